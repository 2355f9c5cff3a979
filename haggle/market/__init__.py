"""The market runner's pure parts."""

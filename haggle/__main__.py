from haggle.cli import main

main()

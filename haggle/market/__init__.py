"""The market runner's pure parts: what a market starts from and how it is measured.

- `catalogue`: 224 second-hand item types in 15 categories (`catalogue.json`,
  built from the hand-written `catalogue_source.psv` by `build_catalogue`), with
  used-price ranges, packed weights and sizes, and the shipping methods the
  carrier limits allow. The figures are typical second-hand prices as commonly
  seen on eBay sold listings, Facebook Marketplace and Craigslist, and
  manufacturer spec sheets for weights and sizes: estimates compiled by hand,
  not scraped, in November 2026.
- `population`: principals, budgets, goods to sell (with private floors and
  true conditions), wants (with private max prices) and variants, from a seed.
- `mandates`: each principal as a `haggle.contracts.mandate.Mandate`.
- `optimum`: the most surplus the population could produce (maximum-weight matching).
- `facts`, `report`, `render`: the facts of a finished market, the figures, the tables.

Nothing here does I/O beyond reading the catalogue file; the runner that
drives services over Kafka feeds `MarketFacts` in and prints the report.
"""

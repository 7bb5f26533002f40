"""llmfy plugin: fallback prices from the genai-prices database.

Its prices rank below the provider plugins' bundled tables, so they apply only
to models that no bundled table, price file or tracker override prices.
Importing this package does not import genai-prices; the first price lookup
does.
"""

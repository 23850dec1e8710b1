"""One module per chapter: the experiments that wire the core and `compress` together and
return tables for the book."""

"""netshrink: making neural networks smaller and faster, the shared code of the book.

The core (this folder: data, models, train, devices, io, measure, paths, stats) holds the data
sets, networks, cached training and measurements; `compress` the pure algorithms (pruning, node
importance, decomposition), which import nothing from the core's file handling or the book;
`experiments` one module per chapter, wiring the two; `book` the profiles, report, plots,
runner and pages that turn runs into the Jupyter Book.
"""

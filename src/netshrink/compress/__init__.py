"""Pure compression algorithms: they take modules and data loaders and return tensors, small
dataclasses or new modules; they read no files, plot nothing and know no profile or manifest."""

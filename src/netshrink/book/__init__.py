"""The book machinery: chapters and their profiles, parameter rules, the report (tables,
figures, glue, manifest), plots, the papermill runner, generated pages and the browser check."""

"""The book's terrain and instruments: landscapes, runners, precision facts, preconditioning measured,
the Fisher, other frameworks' conventions, and the one list of the book's optimizers. Built on ``core``."""

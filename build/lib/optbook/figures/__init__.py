"""What readers see: the book's plot style and palette, plots, explorables (figures with sliders that need
no kernel), ipywidgets playgrounds, and the reproducible progress bar. Built on ``core`` and ``lab``."""

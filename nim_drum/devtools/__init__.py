"""Developer tools, not shipped in the image: the batch CLI behind make score, a local DRUM runner, make dropin,
and the README parameter table."""

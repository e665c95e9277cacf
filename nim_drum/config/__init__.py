"""Configuration: runtime parameters, the names DRUM and the code directory's layout fix, and how DRUM runs us."""

"""Annotation platform: prompt annotation, rating and ranking of generated images.

Import `imreward.annotate.api` for the programmatic entry points and
`imreward.annotate.cli.register` for the command line; this package imports nothing
heavy and none of the model code.
"""

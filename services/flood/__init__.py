"""The flood: a scripted webhook storm against a pipeline it brings up, with a report and a check."""

"""``anypool bench``: the guide's GIL experiment (section 1.4), measured on this machine."""

"""Where cases come from: profiles (``grid``), hypothesis strategies (``strategies``) and case
files (``case_file``)."""

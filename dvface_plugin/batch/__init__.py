"""`dvface batch`: archive-scale restoration of many clips split into chunks run by Ray actors."""

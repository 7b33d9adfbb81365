"""Model families: one module each, declaring `family.Family`s (`registry`)."""

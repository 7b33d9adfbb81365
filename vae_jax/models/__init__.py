"""Model families: one module each, declaring a `family.Family` (see `registry`)."""

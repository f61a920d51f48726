-- Admins now create and rename categories: two names that differ only in case would read as
-- the same category to a shopper, so the name is unique in any case (ASCII letters folded).
CREATE UNIQUE INDEX categories_by_folded_name ON categories (LOWER(name));

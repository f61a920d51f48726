-- Orders are listed newest first with the id breaking ties (`ORDER BY created_at DESC, id
-- DESC`): the cursor search, the console and the offset listing. Indexes in that very order
-- (and holding the id) serve a page straight from the index, where an index on the time alone
-- leaves every run of orders placed in the same microsecond to be sorted, page after page.
DROP INDEX orders_by_created;
CREATE INDEX orders_by_created ON orders (created_at, id);
DROP INDEX orders_by_status;
CREATE INDEX orders_by_status ON orders (status, created_at, id);

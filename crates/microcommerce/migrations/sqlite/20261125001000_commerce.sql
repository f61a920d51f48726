-- catalog ---------------------------------------------------------------------------------
CREATE TABLE categories (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL
);

CREATE TABLE products (
    id          TEXT    PRIMARY KEY,
    sku         TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    currency    TEXT    NOT NULL DEFAULT 'USD',
    image_url   TEXT,
    category_id TEXT    NOT NULL REFERENCES categories (id),
    status      TEXT    NOT NULL CHECK (status IN ('Draft', 'Published', 'Archived')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX products_by_category ON products (category_id, name);
CREATE INDEX products_by_name ON products (name);

-- inventory -------------------------------------------------------------------------------
-- Invariants hold in the database too: nothing can make stock negative or over-reserved.
CREATE TABLE stock_items (
    product_id TEXT    PRIMARY KEY REFERENCES products (id),
    on_hand    INTEGER NOT NULL CHECK (on_hand >= 0),
    reserved   INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand),
    updated_at INTEGER NOT NULL
);

CREATE TABLE stock_adjustments (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id     TEXT    NOT NULL REFERENCES stock_items (product_id),
    adjustment     INTEGER NOT NULL,
    quantity_after INTEGER NOT NULL,
    reason         TEXT,
    adjusted_by    TEXT    NOT NULL,
    at             INTEGER NOT NULL
);
CREATE INDEX stock_adjustments_by_product ON stock_adjustments (product_id, id);

-- A reservation ends only through the saga: Held -> Deducted (paid) or Released (compensation).
CREATE TABLE stock_reservations (
    order_id   TEXT    NOT NULL,
    product_id TEXT    NOT NULL REFERENCES stock_items (product_id),
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    status     TEXT    NOT NULL CHECK (status IN ('Held', 'Deducted', 'Released')),
    created_at INTEGER NOT NULL,
    ended_at   INTEGER,
    PRIMARY KEY (order_id, product_id)
);

-- cart ------------------------------------------------------------------------------------
CREATE TABLE carts (
    id         TEXT    PRIMARY KEY,
    buyer_id   TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE cart_items (
    id         TEXT    PRIMARY KEY,
    cart_id    TEXT    NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    product_id TEXT    NOT NULL REFERENCES products (id),
    quantity   INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    added_at   INTEGER NOT NULL,
    UNIQUE (cart_id, product_id)
);

-- ordering --------------------------------------------------------------------------------
CREATE TABLE orders (
    id              TEXT    PRIMARY KEY,
    order_number    TEXT    NOT NULL UNIQUE,
    buyer_id        TEXT    NOT NULL,
    buyer_email     TEXT    NOT NULL,
    ship_name       TEXT    NOT NULL,
    ship_email      TEXT    NOT NULL,
    ship_street     TEXT    NOT NULL,
    ship_city       TEXT    NOT NULL,
    ship_state      TEXT    NOT NULL,
    ship_zip        TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('Submitted', 'StockReserved', 'Paid',
                        'Confirmed', 'Shipped', 'Delivered', 'Failed', 'Cancelled')),
    subtotal_cents  INTEGER NOT NULL,
    shipping_cents  INTEGER NOT NULL,
    tax_cents       INTEGER NOT NULL,
    total_cents     INTEGER NOT NULL,
    failure_reason  TEXT,
    idempotency_key TEXT,
    created_at      INTEGER NOT NULL,
    paid_at         INTEGER,
    updated_at      INTEGER NOT NULL,
    UNIQUE (buyer_id, idempotency_key)
);
CREATE INDEX orders_by_buyer ON orders (buyer_id, created_at);
CREATE INDEX orders_by_status ON orders (status, created_at);
CREATE INDEX orders_by_created ON orders (created_at);

CREATE TABLE order_items (
    order_id         TEXT    NOT NULL REFERENCES orders (id),
    line             INTEGER NOT NULL,
    product_id       TEXT    NOT NULL,
    product_name     TEXT    NOT NULL,
    unit_price_cents INTEGER NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    image_url        TEXT,
    PRIMARY KEY (order_id, line)
);

-- payment ---------------------------------------------------------------------------------
-- At most one payment per order: the primary key makes a second one impossible.
CREATE TABLE payments (
    order_id       TEXT    PRIMARY KEY REFERENCES orders (id),
    succeeded      INTEGER NOT NULL,
    failure_reason TEXT,
    at             INTEGER NOT NULL
);

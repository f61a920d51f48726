-- PostgreSQL: one schema per module (the connection's search path finds them unqualified).
-- See the SQLite migration for what each table is for.
CREATE SCHEMA IF NOT EXISTS catalog;
CREATE SCHEMA IF NOT EXISTS inventory;
CREATE SCHEMA IF NOT EXISTS cart;
CREATE SCHEMA IF NOT EXISTS ordering;

-- catalog ---------------------------------------------------------------------------------
CREATE TABLE catalog.categories (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL
);

CREATE TABLE catalog.products (
    id          TEXT    PRIMARY KEY,
    sku         TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    currency    TEXT    NOT NULL DEFAULT 'USD',
    image_url   TEXT,
    category_id TEXT    NOT NULL REFERENCES catalog.categories (id),
    status      TEXT    NOT NULL CHECK (status IN ('Draft', 'Published', 'Archived')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX products_by_category ON catalog.products (category_id, name);
CREATE INDEX products_by_name ON catalog.products (name);

-- inventory -------------------------------------------------------------------------------
-- Invariants hold in the database too: nothing can make stock negative or over-reserved.
CREATE TABLE inventory.stock_items (
    product_id TEXT    PRIMARY KEY REFERENCES catalog.products (id),
    on_hand    BIGINT NOT NULL CHECK (on_hand >= 0),
    reserved   BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand),
    updated_at BIGINT NOT NULL
);

CREATE TABLE inventory.stock_adjustments (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id     TEXT    NOT NULL REFERENCES inventory.stock_items (product_id),
    adjustment     BIGINT NOT NULL,
    quantity_after BIGINT NOT NULL,
    reason         TEXT,
    adjusted_by    TEXT    NOT NULL,
    at             BIGINT NOT NULL
);
CREATE INDEX stock_adjustments_by_product ON inventory.stock_adjustments (product_id, id);

-- A reservation ends only through the saga: Held -> Deducted (paid) or Released (compensation).
CREATE TABLE inventory.stock_reservations (
    order_id   TEXT    NOT NULL,
    product_id TEXT    NOT NULL REFERENCES inventory.stock_items (product_id),
    quantity   BIGINT NOT NULL CHECK (quantity > 0),
    status     TEXT    NOT NULL CHECK (status IN ('Held', 'Deducted', 'Released')),
    created_at BIGINT NOT NULL,
    ended_at   BIGINT,
    PRIMARY KEY (order_id, product_id)
);

-- cart ------------------------------------------------------------------------------------
CREATE TABLE cart.carts (
    id         TEXT    PRIMARY KEY,
    buyer_id   TEXT    NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE cart.cart_items (
    id         TEXT    PRIMARY KEY,
    cart_id    TEXT    NOT NULL REFERENCES cart.carts (id) ON DELETE CASCADE,
    product_id TEXT    NOT NULL REFERENCES catalog.products (id),
    quantity   BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    added_at   BIGINT NOT NULL,
    UNIQUE (cart_id, product_id)
);

-- ordering --------------------------------------------------------------------------------
CREATE TABLE ordering.orders (
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
    subtotal_cents  BIGINT NOT NULL,
    shipping_cents  BIGINT NOT NULL,
    tax_cents       BIGINT NOT NULL,
    total_cents     BIGINT NOT NULL,
    failure_reason  TEXT,
    idempotency_key TEXT,
    created_at      BIGINT NOT NULL,
    paid_at         BIGINT,
    updated_at      BIGINT NOT NULL,
    UNIQUE (buyer_id, idempotency_key)
);
CREATE INDEX orders_by_buyer ON ordering.orders (buyer_id, created_at);
CREATE INDEX orders_by_status ON ordering.orders (status, created_at);
CREATE INDEX orders_by_created ON ordering.orders (created_at);

CREATE TABLE ordering.order_items (
    order_id         TEXT    NOT NULL REFERENCES ordering.orders (id),
    line             BIGINT NOT NULL,
    product_id       TEXT    NOT NULL,
    product_name     TEXT    NOT NULL,
    unit_price_cents BIGINT NOT NULL,
    quantity         BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    image_url        TEXT,
    PRIMARY KEY (order_id, line)
);

-- payment ---------------------------------------------------------------------------------
-- At most one payment per order: the primary key makes a second one impossible.
CREATE TABLE ordering.payments (
    order_id       TEXT    PRIMARY KEY REFERENCES ordering.orders (id),
    succeeded      BIGINT NOT NULL,
    failure_reason TEXT,
    at             BIGINT NOT NULL
);

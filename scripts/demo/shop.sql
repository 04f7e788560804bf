-- The demo's bundled database: `make demo` builds demo-out/shop.db from this file.
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                     placed TEXT NOT NULL, total REAL NOT NULL);
INSERT INTO customers VALUES (1, 'Ada', 'UK'), (2, 'Grace', 'US'), (3, 'Linus', 'FI'), (4, 'Margaret', 'US');
INSERT INTO orders VALUES
  (1, 1, '2026-10-01', 120.00), (2, 1, '2026-10-15', 80.50), (3, 2, '2026-10-03', 310.25),
  (4, 3, '2026-10-20', 42.00), (5, 4, '2026-11-02', 199.99), (6, 2, '2026-11-05', 75.00),
  (7, 4, '2026-11-09', 15.00), (8, 3, '2026-11-11', 260.00);

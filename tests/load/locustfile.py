"""eventshop's shopper mix for Locust (Debian: apt-get install python3-locust).

The same mix as `make load`: 40% listing pages, 30% product pages, 5%
categories, 10% my orders, 5% who am I, 10% place + pay + read back with
X-Min-Position (reported as its own line, FLOW place->pay->visible).

    locust -f tests/load/locustfile.py --host http://127.0.0.1:8080 \
        --headless -u 200 -r 50 -t 60s

Before the users start, the test signs an admin in, seeds the catalogue
through the public API up to LOAD_PRODUCTS products (default 5000; SKUs
LOAD-000001..., the SKUs `make load` lists, so either one's catalogue
serves the other) and registers and signs in LOAD_SHOPPERS shoppers
(default 100), so password hashing stays out of the measured window. ADMIN_EMAIL and ADMIN_PASSWORD
name the admin (default the local run's).

Locust's users wait for each answer before they send again (a closed
model): when the server slows down, so does the offered load, and the
latencies it reports look better than what an arriving shopper sees.
`make load` keeps a constant arrival rate and counts from each arrival's
due time; use it for the figures that matter.
"""

import math
import os
import random
import time
import uuid

import requests
from gevent.pool import Pool
from locust import HttpUser, between, events, task

PRODUCTS = int(os.environ.get("LOAD_PRODUCTS", "5000"))
SHOPPERS = int(os.environ.get("LOAD_SHOPPERS", "100"))
ADMIN_EMAIL = os.environ.get("ADMIN_EMAIL", "admin@example.com")
ADMIN_PASSWORD = os.environ.get("ADMIN_PASSWORD", "Admin123!")
SHOPPER_PASSWORD = "load-test-shopper"
ORDERABLE_STOCK = 10_000
SORTS = ["price", "-price", "name", "-created_at"]
CATEGORIES = ["electronics", "clothing", "books", "home", "sports",
              "toys", "garden", "beauty", "grocery", "automotive"]

# What the setup gathered, shared by every user of this process.
world = {"shoppers": [], "products": [], "orderable": [], "categories": [], "pages": 1}


def seed_product(i):
    """The create body of seeded product i."""
    cat = CATEGORIES[i % len(CATEGORIES)]
    cents = 100 + int(abs(math.sin(i * 12.9898)) * 49_900)
    return {
        "sku": "LOAD-%06d" % i,
        "name": "Load product %d" % i,
        "description": "A product of the load-test catalogue, item %d." % i,
        "price": cents / 100,
        "category": cat,
        "inventory": {"quantity": 1_000_000, "warehouse": "load"},
    }


def catalogue_total(s, host):
    r = s.get(host + "/api/products?limit=1", timeout=30)
    r.raise_for_status()
    return r.json()["total"]


def sign_in(s, host, email, password):
    r = s.post(host + "/api/auth/login", json={"email": email, "password": password}, timeout=30)
    r.raise_for_status()
    return r.json()["access_token"]


@events.test_start.add_listener
def prepare(environment, **_):
    """Seeds and signs in before any user starts (in every process)."""
    host = environment.host
    s = requests.Session()
    total = catalogue_total(s, host)
    if total < PRODUCTS:
        token = sign_in(s, host, ADMIN_EMAIL, ADMIN_PASSWORD)

        def create(i):
            r = s.post(host + "/api/products", json=seed_product(i),
                       headers={"Authorization": "Bearer " + token}, timeout=30)
            if r.status_code not in (201, 409):  # 409: listed by an earlier run
                r.raise_for_status()

        Pool(8).map(create, range(1, PRODUCTS + 1))
        deadline = time.time() + 600
        while catalogue_total(s, host) < PRODUCTS and time.time() < deadline:
            time.sleep(0.5)  # the catalogue is a projection: let it catch up
        total = catalogue_total(s, host)
    page = 1
    while len(world["products"]) < 1000:
        r = s.get(host + "/api/products?page=%d&limit=100" % page, timeout=60)
        r.raise_for_status()
        items = r.json()["items"]
        for p in items:
            world["products"].append(p["id"])
            if p["inventory"]["available"] >= ORDERABLE_STOCK:
                world["orderable"].append(p["id"])
        if len(items) < 100:
            break
        page += 1
    r = s.get(host + "/api/products/categories", timeout=30)
    r.raise_for_status()
    world["categories"] = [c["name"] for c in r.json()["items"]]
    world["pages"] = max(min(50, (total + 9) // 10), 1)

    def shopper(i):
        email = "load-shopper-%04d@example.com" % i
        r = s.post(host + "/api/auth/register",
                   json={"email": email, "password": SHOPPER_PASSWORD, "full_name": "Shopper %d" % i}, timeout=30)
        if r.status_code not in (201, 409):  # 409: registered by an earlier run
            r.raise_for_status()
        return sign_in(s, host, email, SHOPPER_PASSWORD)

    world["shoppers"] = Pool(4).map(shopper, range(SHOPPERS))


class Shopper(HttpUser):
    wait_time = between(0.5, 1.5)

    def on_start(self):
        self.token = random.choice(world["shoppers"])
        self.auth = {"Authorization": "Bearer " + self.token}

    @task(8)
    def browse(self):
        r = random.random()
        pages = world["pages"]
        page = 1 if r < 0.5 else random.randint(1, min(pages, 10)) if r < 0.8 else random.randint(1, pages)
        params = {"page": page, "limit": 10}
        if world["categories"] and random.random() < 0.3:
            params["category"] = random.choice(world["categories"])
            params["page"] = random.randint(1, min(page, 3))
        if random.random() < 0.3:
            params["sort"] = random.choice(SORTS)
        self.client.get("/api/products", params=params, name="/api/products")

    @task(6)
    def view(self):
        self.client.get("/api/products/" + random.choice(world["products"]), name="/api/products/{id}")

    @task(1)
    def categories(self):
        self.client.get("/api/products/categories")

    @task(2)
    def my_orders(self):
        self.client.get("/api/orders?page=1&limit=10", headers=self.auth, name="/api/orders")

    @task(1)
    def me(self):
        self.client.get("/api/auth/me", headers=self.auth)

    @task(2)
    def order_pay_read(self):
        start = time.perf_counter()
        error = None
        items = [{"product_id": random.choice(world["orderable"]), "quantity": random.randint(1, 3)}]
        with self.client.post("/api/orders", json={"items": items}, name="/api/orders",
                              headers={**self.auth, "Idempotency-Key": str(uuid.uuid4())},
                              catch_response=True) as r:
            if r.status_code != 201:
                r.failure("place: %d" % r.status_code)
                error = "place %d" % r.status_code
            order_id = r.json().get("id") if r.status_code == 201 else None
        if order_id:
            card = {"card_number": "4242424242424242", "exp_month": 12,
                    "exp_year": time.gmtime().tm_year + 3, "cvc": "123"}
            with self.client.post("/api/orders/%s/pay" % order_id, json={"payment_method": card},
                                  name="/api/orders/{id}/pay",
                                  headers={**self.auth, "Idempotency-Key": str(uuid.uuid4())},
                                  catch_response=True) as r:
                if r.status_code != 200:
                    r.failure("pay: %d" % r.status_code)
                    error = "pay %d" % r.status_code
                position = r.headers.get("X-Event-Position", "")
            if not error:
                with self.client.get("/api/orders/" + order_id, name="/api/orders/{id} +X-Min-Position",
                                     headers={**self.auth, "X-Min-Position": position},
                                     catch_response=True) as r:
                    if r.status_code != 200 or r.headers.get("X-Stale") == "true" or r.json().get("status") != "paid":
                        r.failure("read back: %d, stale %s" % (r.status_code, r.headers.get("X-Stale")))
                        error = "read back"
        self.environment.events.request.fire(
            request_type="FLOW", name="place->pay->visible",
            response_time=(time.perf_counter() - start) * 1000, response_length=0,
            exception=Exception(error) if error else None, context={})

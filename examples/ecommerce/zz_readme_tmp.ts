// Temporary: prints real request/response pairs for the README.
import { startLocalShop } from "./_local_shop.ts";
const shop = await startLocalShop();
const show = async (method: string, path: string, body?: unknown, raw?: string) => {
  const r = await fetch(shop.url + path, { method, headers: body === undefined && raw === undefined ? {} : { "content-type": "application/json" }, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const text = await r.text();
  const headers = [...r.headers].filter(([k]) => ["location", "content-type", "allow"].includes(k)).map(([k, v]) => `${k}: ${v}`);
  console.log(`### ${method} ${path}\n${body === undefined ? "" : JSON.stringify(body) + "\n"}${raw ?? ""}--> ${r.status} ${headers.join("; ")}\n${text ? JSON.stringify(JSON.parse(text), null, 2) : ""}\n`);
  return text ? JSON.parse(text) : null;
};
const year = new Date().getUTCFullYear() + 4;
const card = { cardNumber: "4242 4242 4242 4242", expiryMonth: 12, expiryYear: 2030, cvv: "123", holderName: "Ada Lovelace" };
const addr = { name: "Ada Lovelace", street: "1 Main St", city: "Springfield", postalCode: "62701", country: "US", region: "IL" };
const order = { customerId: "CUST-1001", email: "ada@example.com", items: [{ productId: "LAPTOP-PRO", quantity: 1 }, { productId: "MOUSE-WIRELESS", quantity: 2 }], shippingAddress: addr, paymentMethod: card, shippingOption: "EXPRESS", discountCode: "WELCOME10" };
try {
  const o = await show("POST", "/api/v1/orders", order);
  await show("GET", `/api/v1/orders/${o.orderId}`);
  await show("POST", "/api/v1/orders", { ...order, email: "ada@example", discountCode: undefined });
  await show("POST", "/api/v1/orders", { ...order, paymentMethod: { ...card, cardNumber: "4000 0000 0000 0002" } });
  await show("POST", "/api/v1/orders", { ...order, items: [{ productId: "MONITOR-4K", quantity: 40 }] });
  await show("POST", "/api/v1/orders", { ...order, items: [{ productId: "USB-HUB", quantity: 1 }], discountCode: "SAVE20" });
  await show("POST", "/api/v1/orders", { ...order, items: [{ productId: "JETPACK", quantity: 1 }] });
  await show("GET", "/api/v1/orders/ORD-00000000-0000-4000-8000-000000000000");
  await show("POST", "/api/v1/orders", undefined, '{"customerId": ');
  await show("POST", "/api/v1/inventory/check", { items: [{ productId: "LAPTOP-PRO", quantity: 2 }, { productId: "MONITOR-4K", quantity: 31 }] });
  const r = await show("POST", "/api/v1/inventory/reserve", { orderId: "ORD-7d0c9e2a-1b3f-4c5d-8e6f-a1b2c3d4e5f6", items: [{ productId: "LAPTOP-PRO", quantity: 2 }] });
  await show("GET", "/api/v1/inventory/LAPTOP-PRO");
  await show("POST", "/api/v1/inventory/release", { reservationId: r.reservationId });
  await show("POST", "/api/v1/inventory/reserve", { orderId: "ORD-8e1d0f3b-2c4a-4d6e-9f70-b2c3d4e5f6a7", items: [{ productId: "MONITOR-4K", quantity: 31 }] });
  await show("GET", "/api/v1/inventory/TOASTER");
  await show("POST", "/api/v1/pricing/calculate", { items: [{ productId: "LAPTOP-PRO", quantity: 1 }, { productId: "USB-HUB", quantity: 3 }] });
  await show("POST", "/api/v1/pricing/discount", { customerId: "CUST-1001", subtotalCents: 137496, code: "SAVE20" });
  await show("POST", "/api/v1/pricing/discount", { customerId: "CUST-1001", subtotalCents: 12000, code: "BULK15" });
  await show("POST", "/api/v1/pricing/tax", { amountCents: 109997, country: "US", region: "CA" });
  await show("POST", "/api/v1/pricing/tax", { amountCents: 109997, country: "BR" });
  const p = await show("POST", "/api/v1/payment/process", { orderId: "ORD-1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", customerId: "CUST-1001", amountCents: 4998, paymentMethod: card });
  await show("POST", "/api/v1/payment/process", { orderId: "ORD-2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e", customerId: "CUST-1001", amountCents: 4998, paymentMethod: { ...card, cardNumber: "4000000000009995" } });
  await show("POST", "/api/v1/payment/process", { orderId: "ORD-2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e", customerId: "CUST-1001", amountCents: 4998, paymentMethod: { ...card, cardNumber: "4242 4242 4242 4241" } });
  await show("POST", "/api/v1/payment/refund", { transactionId: p.transactionId, amountCents: 1000, reason: "damaged box" });
  await show("POST", "/api/v1/payment/refund", { transactionId: p.transactionId, amountCents: 5000, reason: "again" });
  await show("POST", "/api/v1/payment/refund", { transactionId: "TXN-00000000-0000-4000-8000-000000000000", reason: "x" });
  await show("POST", "/api/v1/fulfillment/shipping/calculate", { items: [{ productId: "MONITOR-4K", quantity: 1 }], destination: { ...addr, country: "DE", postalCode: "10115", city: "Berlin", region: undefined } });
  const s = await show("POST", "/api/v1/fulfillment/shipments", { orderId: "ORD-1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", items: [{ productId: "USB-HUB", quantity: 2 }], destination: addr, option: "EXPRESS" });
  await show("POST", "/api/v1/fulfillment/shipments", { orderId: "ORD-1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", items: [{ productId: "USB-HUB", quantity: 3 }], destination: addr, option: "EXPRESS" });
  await show("GET", `/api/v1/fulfillment/shipments/${s.trackingNumber}`);
  await show("GET", `/api/v1/fulfillment/shipments/AE000000005US`);
  await show("POST", "/api/v1/fulfillment/shipments", { orderId: "ORD-3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f", items: [{ productId: "USB-HUB", quantity: 2 }], destination: { ...addr, country: "JP", postalCode: "100-0001", city: "Tokyo", region: undefined }, option: "OVERNIGHT" });
} finally { await shop.close(); }

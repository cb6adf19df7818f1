/** Postal addresses in the countries the demo shop ships to. */

import { type Field, optional, parseObject, parseString } from "./parse.ts";

/** ISO 3166-1 alpha-2 codes of the countries the shop ships to, with their names and postal code formats. */
export const COUNTRIES = {
  US: { name: "United States", postalCode: /^\d{5}(?:-\d{4})?$/, postalExample: "62701" },
  CA: { name: "Canada", postalCode: /^[A-Z]\d[A-Z] ?\d[A-Z]\d$/, postalExample: "K1A 0B1" },
  GB: { name: "United Kingdom", postalCode: /^[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}$/, postalExample: "SW1A 1AA" },
  DE: { name: "Germany", postalCode: /^\d{5}$/, postalExample: "10115" },
  FR: { name: "France", postalCode: /^\d{5}$/, postalExample: "75001" },
  NL: { name: "Netherlands", postalCode: /^\d{4} ?[A-Z]{2}$/, postalExample: "1012 AB" },
  ES: { name: "Spain", postalCode: /^\d{5}$/, postalExample: "28001" },
  IT: { name: "Italy", postalCode: /^\d{5}$/, postalExample: "00118" },
  JP: { name: "Japan", postalCode: /^\d{3}-?\d{4}$/, postalExample: "100-0001" },
  AU: { name: "Australia", postalCode: /^\d{4}$/, postalExample: "2000" },
} as const;

export type CountryCode = keyof typeof COUNTRIES;

/** The 50 states and DC: a US address must name one in `region`. */
export const US_STATES: readonly string[] = (
  "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND " +
  "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY"
).split(" ");

/** A postal address as it travels. `region` is the state for US addresses (required there). */
export interface Address {
  name: string;
  street: string;
  city: string;
  postalCode: string;
  country: string;
  region?: string;
}

/** A parsed address: country upper-cased and supported, postal code in that country's format. */
export interface ParsedAddress {
  name: string;
  street: string;
  city: string;
  postalCode: string;
  country: CountryCode;
  region?: string;
}

/** A country the shop ships to (`"us"` is accepted as `US`). */
export function parseCountry(value: unknown, field: Field): CountryCode {
  const code = parseString(value, field, { max: 2, pattern: /^[A-Za-z]{2}$/, expected: "a two-letter code" })
    .toUpperCase();
  if (!(code in COUNTRIES)) {
    field.fail(`${code} is not a country the shop ships to (${Object.keys(COUNTRIES).join(", ")})`);
  }
  return code as CountryCode;
}

const ADDRESS_FIELDS = ["name", "street", "city", "postalCode", "country", "region"] as const;

export function parseAddress(value: unknown, field: Field): ParsedAddress {
  const raw = parseObject(value, field, ADDRESS_FIELDS);
  const country = parseCountry(raw.country, field.at("country"));
  const address: ParsedAddress = {
    name: parseString(raw.name, field.at("name"), { max: 100 }),
    street: parseString(raw.street, field.at("street"), { max: 200 }),
    city: parseString(raw.city, field.at("city"), { max: 100 }),
    postalCode: parsePostalCode(raw.postalCode, field.at("postalCode"), country),
    country,
  };
  const region = parseRegion(raw.region, field.at("region"), country);
  if (region !== undefined) address.region = region;
  return address;
}

/** The state of a US address (required, upper-cased); free text elsewhere (optional). */
export function parseRegion(value: unknown, field: Field, country: CountryCode): string | undefined {
  const region = optional(value, (v) => parseString(v, field, { max: 50 }));
  if (country !== "US") return region;
  if (region === undefined) field.fail("is missing (a US address needs its state, e.g. IL)");
  const state = region.toUpperCase();
  if (!US_STATES.includes(state)) field.fail(`must be a US state code like IL, got "${region}"`);
  return state;
}

function parsePostalCode(value: unknown, field: Field, country: CountryCode): string {
  const text = parseString(value, field, { max: 10 }).toUpperCase();
  const format = COUNTRIES[country];
  if (!format.postalCode.test(text)) {
    field.fail(`must be a ${format.name} postal code like ${format.postalExample}, got "${text}"`);
  }
  return text;
}

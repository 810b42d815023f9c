import { BlockList, isIP } from "node:net";

/**
 * IP ranges in CIDR notation (`203.0.113.0/24`, `2001:db8::/32`), as a template's
 * `drift.sourceIps` lists them. Node's `BlockList` does the matching, including IPv4-mapped
 * IPv6 addresses (`::ffff:203.0.113.7`).
 */

const CIDR = /^([^/\s]+)\/(\d{1,3})$/;

/** True when `value` is an IPv4 or IPv6 address (not a host name such as `s3.amazonaws.com`). */
export function isIpAddress(value: string): boolean {
  return isIP(value) !== 0;
}

/** True when `value` is an IPv4 or IPv6 CIDR block whose prefix fits its address family. */
export function isCidr(value: string): boolean {
  try {
    cidrList([value]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Compiles CIDR blocks into a matcher.
 * @throws Error naming the first block that is not valid CIDR notation
 * @example
 * const office = cidrList(["203.0.113.0/24"]);
 * office("203.0.113.7"); // → true
 * office("198.51.100.1"); // → false
 */
export function cidrList(blocks: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const block of blocks) {
    const [, address = "", prefix = ""] = CIDR.exec(block) ?? [];
    const family = isIP(address);
    if (family === 0) throw new Error(`"${block}" is not CIDR notation`);
    try {
      list.addSubnet(address, Number(prefix), family === 4 ? "ipv4" : "ipv6");
    } catch {
      throw new Error(`"${block}" is not CIDR notation`);
    }
  }
  return (address) => {
    const family = isIP(address);
    return family !== 0 && list.check(address, family === 4 ? "ipv4" : "ipv6");
  };
}

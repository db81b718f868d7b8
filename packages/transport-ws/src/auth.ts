import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** 32 random bytes as hex: a fresh challenge for every handshake, so a recorded handshake cannot be replayed. */
export function newNonce(): string {
  return randomBytes(32).toString("hex");
}

/**
 * The MAC a dialling replica sends: it binds the cluster secret to the
 * listener's fresh nonce and to both identities. `welcome` proves the
 * listener knows the secret too (mutual authentication).
 */
export function helloMac(secret: string, clusterId: string, challengeNonce: string, dialer: string, listener: string): string {
  return hmac(secret, `synod-peer-v1|hello|${clusterId}|${challengeNonce}|${dialer}|${listener}`);
}

export function welcomeMac(secret: string, clusterId: string, helloNonce: string, dialer: string, listener: string): string {
  return hmac(secret, `synod-peer-v1|welcome|${clusterId}|${helloNonce}|${dialer}|${listener}`);
}

function hmac(secret: string, text: string): string {
  return createHmac("sha256", secret).update(text).digest("hex");
}

/** Constant-time comparison of two hex strings or tokens. */
export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

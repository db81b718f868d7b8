/**
 * A minimal RGBA raster and a PNG encoder for it: just enough drawing for the
 * report's plots (rectangles, lines, dots, 5x7 text) with no dependency beyond
 * `node:zlib`. Coordinates are pixels from the top-left corner; anything drawn
 * outside the raster is clipped.
 */
import { crc32, deflateSync } from "node:zlib";
import { GLYPH_ADVANCE, GLYPH_WIDTH, glyphRows } from "./font.js";

/** 8-bit red, green, blue and alpha; alpha 255 is opaque. */
export type Rgba = readonly [red: number, green: number, blue: number, alpha: number];

/** `#rrggbb` with an opacity from 0 to 1, as an `Rgba`. */
export function hexColor(hex: string, opacity = 1): Rgba {
  if (!/^#[0-9a-f]{6}$/i.test(hex)) throw new Error(`hexColor: ${JSON.stringify(hex)} is not #rrggbb`);
  if (!(opacity >= 0 && opacity <= 1)) throw new Error(`hexColor: opacity ${opacity} is not within 0..1`);
  const value = Number.parseInt(hex.slice(1), 16);
  return [(value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff, Math.round(opacity * 255)];
}

export class Raster {
  /** Row-major RGBA bytes, four per pixel, starting transparent black. */
  readonly pixels: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
      throw new Error(`Raster: ${width}x${height} is not a positive whole size`);
    }
    this.pixels = new Uint8Array(width * height * 4);
  }

  /** Sets every pixel to `color`, replacing (not blending with) what was there. */
  fill(color: Rgba): void {
    for (let offset = 0; offset < this.pixels.length; offset += 4) this.pixels.set(color, offset);
  }

  /** The colour at (x, y); the caller keeps (x, y) inside the raster. */
  pixel(x: number, y: number): Rgba {
    if (!this.contains(x, y)) throw new Error(`Raster.pixel: (${x}, ${y}) is outside ${this.width}x${this.height}`);
    const offset = (y * this.width + x) * 4;
    const [red = 0, green = 0, blue = 0, alpha = 0] = this.pixels.subarray(offset, offset + 4);
    return [red, green, blue, alpha];
  }

  /** Blends `color` over one pixel ("source over"); ignored outside the raster. */
  point(x: number, y: number, color: Rgba): void {
    const column = Math.round(x);
    const row = Math.round(y);
    if (!this.contains(column, row)) return;
    const offset = (row * this.width + column) * 4;
    const sourceAlpha = color[3] / 255;
    if (sourceAlpha >= 1) {
      this.pixels.set(color, offset);
      return;
    }
    const targetAlpha = (this.pixels[offset + 3] ?? 0) / 255;
    const alpha = sourceAlpha + targetAlpha * (1 - sourceAlpha);
    if (alpha === 0) return;
    for (let channel = 0; channel < 3; channel += 1) {
      const target = this.pixels[offset + channel] ?? 0;
      const blended = ((color[channel] ?? 0) * sourceAlpha + target * targetAlpha * (1 - sourceAlpha)) / alpha;
      this.pixels[offset + channel] = Math.round(blended);
    }
    this.pixels[offset + 3] = Math.round(alpha * 255);
  }

  /** Blends a `width` by `height` rectangle whose top-left corner is (x, y). */
  rect(x: number, y: number, width: number, height: number, color: Rgba): void {
    const left = Math.max(0, Math.round(x));
    const top = Math.max(0, Math.round(y));
    const right = Math.min(this.width, Math.round(x + width));
    const bottom = Math.min(this.height, Math.round(y + height));
    for (let row = top; row < bottom; row += 1) {
      for (let column = left; column < right; column += 1) this.point(column, row, color);
    }
  }

  /**
   * A straight line (Bresenham) from (x0, y0) to (x1, y1), both ends included,
   * `thickness` pixels wide. A thick translucent line blends some pixels twice.
   */
  line(x0: number, y0: number, x1: number, y1: number, color: Rgba, thickness = 1): void {
    let x = Math.round(x0);
    let y = Math.round(y0);
    const xEnd = Math.round(x1);
    const yEnd = Math.round(y1);
    const xDistance = Math.abs(xEnd - x);
    const yDistance = -Math.abs(yEnd - y);
    const xStep = x < xEnd ? 1 : -1;
    const yStep = y < yEnd ? 1 : -1;
    const offset = Math.floor((thickness - 1) / 2);
    let error = xDistance + yDistance;
    for (;;) {
      if (thickness <= 1) this.point(x, y, color);
      else this.rect(x - offset, y - offset, thickness, thickness, color);
      if (x === xEnd && y === yEnd) return;
      const doubled = 2 * error;
      if (doubled >= yDistance) {
        error += yDistance;
        x += xStep;
      }
      if (doubled <= xDistance) {
        error += xDistance;
        y += yStep;
      }
    }
  }

  /** A filled disc of `radius` pixels centred on (x, y). */
  dot(x: number, y: number, radius: number, color: Rgba): void {
    const centreX = Math.round(x);
    const centreY = Math.round(y);
    const reach = Math.ceil(radius);
    // `radius² + radius` rounds the disc out so that small dots look round, not square-cornered or diamond-shaped.
    const limit = radius * radius + radius;
    for (let dy = -reach; dy <= reach; dy += 1) {
      for (let dx = -reach; dx <= reach; dx += 1) {
        if (dx * dx + dy * dy <= limit) this.point(centreX + dx, centreY + dy, color);
      }
    }
  }

  /** Draws `text` in the 5x7 font with its top-left corner at (x, y) (descenders go below y + 7), each font pixel `scale` pixels square. */
  text(x: number, y: number, text: string, color: Rgba, scale = 1): void {
    let left = Math.round(x);
    const top = Math.round(y);
    for (const character of text) {
      const rows = glyphRows(character);
      for (const [row, mask] of rows.entries()) {
        for (let column = 0; column < GLYPH_WIDTH; column += 1) {
          if ((mask >> (GLYPH_WIDTH - 1 - column)) & 1) {
            this.rect(left + column * scale, top + row * scale, scale, scale, color);
          }
        }
      }
      left += GLYPH_ADVANCE * scale;
    }
  }

  private contains(x: number, y: number): boolean {
    return x >= 0 && y >= 0 && x < this.width && y < this.height;
  }
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** IHDR colour type 6: truecolour with alpha, 8 bits a channel. */
const COLOR_TYPE_RGBA = 6;
const BYTES_PER_PIXEL = 4;

/** The raster as a PNG file: signature, IHDR, one IDAT, IEND. Each row uses filter 0 (none). */
export function encodePng(raster: Raster): Buffer {
  const rowBytes = raster.width * BYTES_PER_PIXEL;
  if (raster.pixels.length !== rowBytes * raster.height) throw new Error("encodePng: pixel buffer does not match the size");
  const header = Buffer.alloc(13);
  header.writeUInt32BE(raster.width, 0);
  header.writeUInt32BE(raster.height, 4);
  header.writeUInt8(8, 8); // bit depth
  header.writeUInt8(COLOR_TYPE_RGBA, 9);
  // Bytes 10..12 stay 0: deflate compression, adaptive filtering, no interlace.
  const scanlines = Buffer.alloc((rowBytes + 1) * raster.height);
  for (let row = 0; row < raster.height; row += 1) {
    // The byte before each row is its filter type, 0.
    scanlines.set(raster.pixels.subarray(row * rowBytes, (row + 1) * rowBytes), row * (rowBytes + 1) + 1);
  }
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk("IHDR", header),
    pngChunk("IDAT", deflateSync(scanlines)),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

/** One chunk: data length, type, data, and the CRC-32 of type and data. */
function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length, 0);
  const typeAndData = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const checksum = Buffer.alloc(4);
  checksum.writeUInt32BE(crc32(typeAndData), 0);
  return Buffer.concat([length, typeAndData, checksum]);
}

/** A PNG decoder for the report's tests: the plots `encodePng` writes and chromium's screenshots. */
import { crc32, inflateSync } from "node:zlib";
import { expect } from "vitest";

export interface DecodedPng {
  readonly width: number;
  readonly height: number;
  /** RGBA, row by row. */
  readonly pixels: Uint8Array;
}

/** A PNG's chunks in order, after checking its signature and every chunk's CRC. */
export function pngChunks(png: Buffer): { readonly type: string; readonly data: Buffer }[] {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const chunks: { type: string; data: Buffer }[] = [];
  for (let offset = 8; offset < png.length; ) {
    const length = png.readUInt32BE(offset);
    const typeAndData = png.subarray(offset + 4, offset + 8 + length);
    expect(png.readUInt32BE(offset + 8 + length)).toBe(crc32(typeAndData));
    chunks.push({ type: typeAndData.subarray(0, 4).toString("latin1"), data: typeAndData.subarray(4) });
    offset += 12 + length;
  }
  return chunks;
}

/** Decodes an 8-bit, non-interlaced RGB or RGBA PNG (any row filter) to RGBA. */
export function decodePng(png: Buffer): DecodedPng {
  const chunks = pngChunks(png);
  const header = chunks.find((chunk) => chunk.type === "IHDR")?.data;
  if (header === undefined) throw new Error("PNG without IHDR");
  const width = header.readUInt32BE(0);
  const height = header.readUInt32BE(4);
  const [bitDepth, colorType, , , interlace] = header.subarray(8);
  if (bitDepth !== 8 || (colorType !== 2 && colorType !== 6) || interlace !== 0) {
    throw new Error(`PNG of bit depth ${bitDepth}, colour type ${colorType}, interlace ${interlace}: not decoded here`);
  }
  const channels = colorType === 6 ? 4 : 3;
  const stride = width * channels;
  const raw = inflateSync(Buffer.concat(chunks.filter((chunk) => chunk.type === "IDAT").map((chunk) => chunk.data)));
  expect(raw.length).toBe((stride + 1) * height);
  const pixels = new Uint8Array(width * height * 4);
  let previous = new Uint8Array(stride);
  for (let row = 0; row < height; row += 1) {
    const start = row * (stride + 1);
    const filter = raw[start]!;
    const current = new Uint8Array(stride);
    for (let index = 0; index < stride; index += 1) {
      const a = index >= channels ? current[index - channels]! : 0;
      const b = previous[index]!;
      const c = index >= channels ? previous[index - channels]! : 0;
      const predictor = [0, a, b, (a + b) >> 1, paeth(a, b, c)][filter];
      if (predictor === undefined) throw new Error(`PNG row ${row} has filter ${filter}`);
      current[index] = (raw[start + 1 + index]! + predictor) & 0xff;
    }
    for (let x = 0; x < width; x += 1) {
      const target = (row * width + x) * 4;
      pixels.set(current.subarray(x * channels, x * channels + 3), target);
      pixels[target + 3] = channels === 4 ? current[x * channels + 3]! : 255;
    }
    previous = current;
  }
  return { width, height, pixels };
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

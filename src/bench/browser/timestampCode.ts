/**
 * The machine-readable timestamp the browser buyer draws into every frame and the staff page
 * reads back from the decoded picture: 48 bits of wall-clock milliseconds and a 16-bit CRC, as a
 * grid of black and white cells big enough to survive VP8 at low bitrates and downscaling.
 *
 * The functions use nothing but each other and builtins, because the pages get them as source
 * (`fn.toString()`) and the tests call them directly: one implementation.
 */

/** Grid layout on a 640x360 picture. */
export const CODE_LAYOUT = { x: 16, y: 16, cell: 24, cols: 16, rows: 4, width: 640, height: 360 };

/** CRC-16/CCITT-FALSE over the 6 bytes of a 48-bit value. */
export function crc16(value: number): number {
  let crc = 0xffff;
  for (let i = 5; i >= 0; i--) {
    const byte = Math.floor(value / 2 ** (8 * i)) % 256;
    crc ^= byte << 8;
    for (let b = 0; b < 8; b++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** 64 bits, most significant first: the 48-bit millisecond value, then its CRC-16. */
export function encodeTimestamp(ms: number): number[] {
  const value = Math.floor(ms) % 2 ** 48;
  const crc = crc16(value);
  const bits: number[] = [];
  for (let i = 47; i >= 0; i--) bits.push(Math.floor(value / 2 ** i) % 2);
  for (let i = 15; i >= 0; i--) bits.push((crc >> i) & 1);
  return bits;
}

/** The millisecond value, or undefined when the bits do not carry a valid code. */
export function decodeTimestamp(bits: readonly number[]): number | undefined {
  if (bits.length !== 64) return undefined;
  let value = 0;
  for (let i = 0; i < 48; i++) value = value * 2 + (bits[i] ? 1 : 0);
  let sent = 0;
  for (let i = 48; i < 64; i++) sent = (sent << 1) | (bits[i] ? 1 : 0);
  return crc16(value) === sent ? value : undefined;
}

/**
 * Reads the 64 bits from RGBA pixels of the code area (`width` pixels per row, the grid at the
 * area's origin with `cell`-pixel cells): the mean luma of each cell's middle half, thresholded
 * halfway between the darkest and the brightest cell.
 */
export function readCodeBits(
  data: ArrayLike<number>,
  width: number,
  cell: number,
  cols: number,
  rows: number,
): number[] {
  const lumas: number[] = [];
  const inset = Math.floor(cell / 4);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      let sum = 0;
      let n = 0;
      for (let y = r * cell + inset; y < (r + 1) * cell - inset; y++) {
        for (let x = c * cell + inset; x < (c + 1) * cell - inset; x++) {
          const i = (y * width + x) * 4;
          sum += 0.299 * data[i]! + 0.587 * data[i + 1]! + 0.114 * data[i + 2]!;
          n++;
        }
      }
      lumas.push(sum / n);
    }
  }
  const lo = Math.min(...lumas);
  const hi = Math.max(...lumas);
  const threshold = hi - lo < 40 ? 128 : (lo + hi) / 2;
  // white cells are 1, black are 0
  return lumas.map((l) => (l > threshold ? 1 : 0));
}

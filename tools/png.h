/* png.h - a tiny PNG encoder for the learn2confuse tools (8-bit grayscale or RGB).

   The image data goes into *stored* (uncompressed) deflate blocks: no compressor to write or
   trust, and any PNG reader accepts it. Files are bigger than they need be, which is fine for
   figures. Only libc; everything is static so each tool just includes this file.

       size_t n; uint8_t *png = png_encode(pixels, w, h, channels, &n);   (free() it afterwards)
*/
#ifndef L2C_TOOLS_PNG_H
#define L2C_TOOLS_PNG_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PNG_BLOCK 65535u /* the largest stored deflate block */

/* CRC-32 (ISO 3309, as PNG and zip use it); the table is built on first use. */
static uint32_t png_crc32(const uint8_t *p, size_t n)
{
    static uint32_t table[256];
    uint32_t c = 0xffffffffu;
    size_t i;
    if (!table[1]) {
        for (i = 0; i < 256; i++) {
            uint32_t v = (uint32_t)i;
            int k;
            for (k = 0; k < 8; k++) v = (v & 1) ? 0xedb88320u ^ (v >> 1) : v >> 1;
            table[i] = v;
        }
    }
    for (i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* Adler-32, the zlib stream's checksum of the uncompressed bytes. */
static uint32_t png_adler32(const uint8_t *p, size_t n)
{
    uint32_t a = 1, b = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        a = (a + p[i]) % 65521u;
        b = (b + a) % 65521u;
    }
    return (b << 16) | a;
}

static void png_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* Finishes a chunk whose n data bytes are already at o + 8: writes length and type in front and
   the CRC (over type + data) behind. Returns the end of the chunk. */
static uint8_t *png_chunk(uint8_t *o, const char *type, size_t n)
{
    png_be32(o, (uint32_t)n);
    memcpy(o + 4, type, 4);
    png_be32(o + 8 + n, png_crc32(o + 4, n + 4));
    return o + 12 + n;
}

/* Writes raw as a zlib stream of stored blocks at o; returns the end. */
static uint8_t *png_zlib_stored(uint8_t *o, const uint8_t *raw, size_t n)
{
    size_t pos = 0;
    *o++ = 0x78; /* deflate, 32 KiB window */
    *o++ = 0x01; /* no dictionary, "fastest"; 0x7801 is a multiple of 31 as zlib requires */
    do {
        size_t len = n - pos < PNG_BLOCK ? n - pos : PNG_BLOCK;
        /* BFINAL in bit 0, BTYPE 00 = stored; the rest of the byte is padding to a boundary */
        *o++ = (uint8_t)(pos + len == n);
        o[0] = (uint8_t)len; o[1] = (uint8_t)(len >> 8);           /* LEN, little-endian */
        o[2] = (uint8_t)~len; o[3] = (uint8_t)(~len >> 8);         /* NLEN = ~LEN */
        memcpy(o + 4, raw + pos, len);
        o += 4 + len;
        pos += len;
    } while (pos < n);
    png_be32(o, png_adler32(raw, n));
    return o + 4;
}

/* Encodes w x h pixels (row-major, `channels` = 1 gray or 3 RGB bytes each) as a PNG file in a
   malloc'd buffer; *out_len gets its size. NULL on a bad argument or when memory runs out. */
static uint8_t *png_encode(const uint8_t *pixels, int w, int h, int channels, size_t *out_len)
{
    static const uint8_t sig[8] = {137, 'P', 'N', 'G', '\r', '\n', 26, '\n'};
    size_t stride, raw_len, zlib_len, total, y;
    uint8_t *raw, *out, *o;

    if (!pixels || !out_len || w < 1 || h < 1 || (channels != 1 && channels != 3)) return NULL;
    stride = (size_t)w * (size_t)channels + 1; /* each scanline starts with its filter byte */
    if (stride > 0x7fffffffu / (size_t)h) return NULL; /* keeps every size below 2^31 */
    raw_len = stride * (size_t)h;
    zlib_len = 2 + 5 * ((raw_len + PNG_BLOCK - 1) / PNG_BLOCK) + raw_len + 4;
    if (zlib_len > 0x7fffffffu) return NULL; /* a PNG chunk length must fit in 31 bits */
    total = 8 + (12 + 13) + (12 + zlib_len) + 12;

    raw = (uint8_t *)malloc(raw_len);
    out = (uint8_t *)malloc(total);
    if (!raw || !out) { free(raw); free(out); return NULL; }
    for (y = 0; y < (size_t)h; y++) { /* filter type 0 (None): rows go in as they are */
        raw[y * stride] = 0;
        memcpy(raw + y * stride + 1, pixels + y * (stride - 1), stride - 1);
    }

    memcpy(out, sig, 8);
    o = out + 8;
    png_be32(o + 8, (uint32_t)w);
    png_be32(o + 12, (uint32_t)h);
    o[16] = 8;                              /* bit depth */
    o[17] = (uint8_t)(channels == 3 ? 2 : 0); /* colour type: 2 truecolour, 0 grayscale */
    o[18] = o[19] = o[20] = 0;              /* deflate, adaptive filtering, no interlace */
    o = png_chunk(o, "IHDR", 13);
    png_zlib_stored(o + 8, raw, raw_len);
    o = png_chunk(o, "IDAT", zlib_len);
    o = png_chunk(o, "IEND", 0);
    free(raw);
    *out_len = (size_t)(o - out);
    return out;
}

#endif /* L2C_TOOLS_PNG_H */

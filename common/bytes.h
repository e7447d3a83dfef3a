/* bytes: byte spans and big-endian integer access for wire formats.
 *
 * Every wire field is read and written through these helpers; nothing casts
 * a buffer to a struct. All functions are inline and do no bounds checks:
 * the caller has already checked that the bytes are there. */
#ifndef DC_COMMON_BYTES_H
#define DC_COMMON_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* A borrowed run of bytes: points into someone else's buffer. */
struct dc_span {
    const uint8_t *p; /* borrowed; valid while the underlying buffer is */
    size_t len;       /* bytes */
};

/* Reads a big-endian uint16 from p[0..1]. */
static inline uint16_t dc_get_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

/* Reads a big-endian uint32 from p[0..3]. */
static inline uint32_t dc_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Writes v big-endian into p[0..1]. */
static inline void dc_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* Writes v big-endian into p[0..3]. */
static inline void dc_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif

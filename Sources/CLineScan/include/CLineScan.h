// 16-byte classification for the line-protocol decoder's fast path. Each function returns
// a bit mask with bit i set when byte p[i] ends the token being scanned; the caller must
// guarantee that p[0..15] are readable. SSE2 is part of every x86-64 CPU; other
// architectures get a portable scalar version with the same results.
#ifndef CLINESCAN_H
#define CLINESCAN_H

#include <stdint.h>

#if defined(__SSE2__)
#include <emmintrin.h>

/// Bytes that end a name in the fast path: space and controls (<= 0x20), ',', '=', '\\', DEL and
/// non-ASCII (>= 0x7F). The range test is one signed compare: adding 0x5F maps 0x21...0x7E,
/// the bytes that can continue a name, to -128...-35.
static inline __m128i lp_key_stop_bytes(__m128i x) {
    __m128i outside = _mm_cmpgt_epi8(_mm_add_epi8(x, _mm_set1_epi8(0x5F)), _mm_set1_epi8(-35));
    __m128i comma = _mm_cmpeq_epi8(x, _mm_set1_epi8(','));
    __m128i backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'));
    __m128i equals = _mm_cmpeq_epi8(x, _mm_set1_epi8('='));
    return _mm_or_si128(_mm_or_si128(outside, comma), _mm_or_si128(backslash, equals));
}

/// Bit i set when p[i] ends a name (see ``lp_key_stop_bytes``).
static inline uint32_t lp_key_stops16(const uint8_t *p) {
    return (uint32_t)_mm_movemask_epi8(lp_key_stop_bytes(_mm_loadu_si128((const __m128i *)p)));
}

/// ``lp_key_stops16`` for the 64 bytes at p, bit i for p[i].
static inline uint64_t lp_key_stops64(const uint8_t *p) {
    return (uint64_t)lp_key_stops16(p) | ((uint64_t)lp_key_stops16(p + 16) << 16)
        | ((uint64_t)lp_key_stops16(p + 32) << 32) | ((uint64_t)lp_key_stops16(p + 48) << 48);
}

/// Bytes that stop a string value scan: '"', '\\', LF and non-ASCII (>= 0x80).
static inline uint32_t lp_string_stops16(const uint8_t *p) {
    __m128i x = _mm_loadu_si128((const __m128i *)p);
    __m128i quote = _mm_cmpeq_epi8(x, _mm_set1_epi8('"'));
    __m128i backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'));
    __m128i lf = _mm_cmpeq_epi8(x, _mm_set1_epi8('\n'));
    return (uint32_t)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), _mm_or_si128(lf, x)));
}

/// Bytes that end a line's series bytes in the metric path's one-pass scan: space, LF, CR,
/// '#', '"' and '\\' (the scan hands every one but the space to the full decoder).
static inline uint32_t lp_series_stops16(const uint8_t *p) {
    __m128i x = _mm_loadu_si128((const __m128i *)p);
    __m128i a = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8(' ')), _mm_cmpeq_epi8(x, _mm_set1_epi8('\n')));
    __m128i b = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('\r')), _mm_cmpeq_epi8(x, _mm_set1_epi8('#')));
    __m128i c = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')), _mm_cmpeq_epi8(x, _mm_set1_epi8('\\')));
    return (uint32_t)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), c));
}

#else

static inline uint32_t lp_key_stops16(const uint8_t *p) {
    uint32_t m = 0;
    for (int i = 0; i < 16; i++) {
        uint8_t b = p[i];
        if (b <= 0x20 || b >= 0x7F || b == ',' || b == '\\' || b == '=') m |= 1u << i;
    }
    return m;
}

static inline uint64_t lp_key_stops64(const uint8_t *p) {
    return (uint64_t)lp_key_stops16(p) | ((uint64_t)lp_key_stops16(p + 16) << 16)
        | ((uint64_t)lp_key_stops16(p + 32) << 32) | ((uint64_t)lp_key_stops16(p + 48) << 48);
}

static inline uint32_t lp_string_stops16(const uint8_t *p) {
    uint32_t m = 0;
    for (int i = 0; i < 16; i++) {
        uint8_t b = p[i];
        if (b == '"' || b == '\\' || b == '\n' || b >= 0x80) m |= 1u << i;
    }
    return m;
}

static inline uint32_t lp_series_stops16(const uint8_t *p) {
    uint32_t m = 0;
    for (int i = 0; i < 16; i++) {
        uint8_t b = p[i];
        if (b == ' ' || b == '\n' || b == '\r' || b == '#' || b == '"' || b == '\\') m |= 1u << i;
    }
    return m;
}

#endif

#endif

// test_json.c: the one JSON string writer (plm_json_quote, src/json.c): escapes ('"', '\\', \n,
// \r, \t, other control characters as \u00XX), invalid UTF-8 repaired to U+FFFD per maximal
// subpart (as TextDecoder does), snprintf-style lengths and truncation, and every output read back
// by the parser (plm_json_parse) as the repaired text.
#include "json.h"
#include "test.h"

// quoted: plm_json_quote of s (n bytes) in a static buffer
static const char *quoted(const char *s, size_t n) {
    static char buf[256];
    size_t k = plm_json_quote(s, n, buf, sizeof buf);
    CHECK(k == strlen(buf) && k == plm_json_quote(s, n, NULL, 0));
    return buf;
}

// same: s (n bytes) quotes to want, and want parses back to the repaired text back
static void same(const char *s, size_t n, const char *want, const char *back) {
    const char *got = quoted(s, n);
    CHECK_MSG(!strcmp(got, want), "quote: got %s, want %s", got, want);
    plm_json j;
    plm_error err;
    char text[256];
    if (plm_json_parse(&j, got, strlen(got), "quoted", &err) != PLM_OK) {
        CHECK_MSG(0, "quote of %s does not parse: %s", want, err.msg);
        return;
    }
    int64_t m = plm_json_str(&j, 0, text, sizeof text);
    size_t bn = memchr(s, 0, n) ? n : strlen(back); // a NUL inside: back is s itself
    CHECK_MSG(m == (int64_t)bn && !memcmp(text, back, bn), "parse back of %s", want);
    plm_json_free(&j);
}

// test_eq: plm_json_eq against a key with "\u0000" in it: the C string ends there, so no match,
// and nothing is read past its end (the fuzzer's safetensors header with such a key, under ASan)
static void test_eq(void) {
    static const char text[] = "{\"a\\u0000b\": 1, \"\\u0000\": 2, \"a\": 3}";
    plm_json j;
    plm_error err;
    if (plm_json_parse(&j, text, strlen(text), "eq", &err) != PLM_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    const char a[2] = "a", none[1] = ""; // no byte after either string's end
    CHECK(!plm_json_eq(&j, 1, a) && !plm_json_eq(&j, 3, none) && plm_json_eq(&j, 5, a));
    plm_json_free(&j);
}

int main(void) {
    test_self();
    test_eq();
    same("", 0, "\"\"", "");
    same("plain text", 10, "\"plain text\"", "plain text");
    same("a\"b\\c", 5, "\"a\\\"b\\\\c\"", "a\"b\\c");
    same("l1\nl2\r\n\tx", 9, "\"l1\\nl2\\r\\n\\tx\"", "l1\nl2\r\n\tx");
    same("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\"", "\x01\x1f\x7f");
    same("nul\0in", 6, "\"nul\\u0000in\"", "nul\0in");
    same("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
         "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
         "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"); // 2-, 3- and 4-byte characters kept
    same("\xef\xbf\xbd", 3, "\"\xef\xbf\xbd\"", "\xef\xbf\xbd"); // a real U+FFFD stays one
    // invalid UTF-8: one U+FFFD per maximal subpart (WHATWG), the rest kept
    same("a\xff"
         "b",
         3,
         "\"a\xef\xbf\xbd"
         "b\"",
         "a\xef\xbf\xbd"
         "b");
    same("\xe2\x82", 2, "\"\xef\xbf\xbd\"", "\xef\xbf\xbd"); // truncated: one
    same("\xe2\x82x", 3, "\"\xef\xbf\xbdx\"", "\xef\xbf\xbdx");
    same("\xef\xbf", 2, "\"\xef\xbf\xbd\"", "\xef\xbf\xbd"); // not a U+FFFD yet
    same("\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"", "\xef\xbf\xbd\xef\xbf\xbd"); // overlong
    same("\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"",
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); // a surrogate
    same("\xf4\x90\x80\x80", 4, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"",
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); // above U+10FFFF
    // snprintf's contract: the full length, a truncated NUL-terminated prefix
    char small[5];
    CHECK(plm_json_quote("a\nbcdef", 7, small, sizeof small) == 10 && !strcmp(small, "\"a\\n"));
    CHECK(plm_json_quote("abc", 3, small, 0) == 5);
    return test_main_end("test_json");
}

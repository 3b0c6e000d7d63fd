/* wc: reads stdin to the end; prints line, word and byte counts, then the
 * text upper-cased. Exits with the status given as argv[1], if any. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    static char text[65536];
    size_t len = 0;
    int c, lines = 0, words = 0, in_word = 0;
    while ((c = getchar()) != EOF) {
        if (len < sizeof text - 1)
            text[len] = (char)toupper(c);
        len++;
        if (c == '\n')
            lines++;
        if (isspace(c)) {
            in_word = 0;
        } else if (!in_word) {
            in_word = 1;
            words++;
        }
    }
    text[len < sizeof text ? len : sizeof text - 1] = 0;
    printf("%d %d %zu\n%s", lines, words, len, text);
    const char *who = getenv("WHO");
    if (who)
        fprintf(stderr, "who=%s\n", who);
    return argc > 1 ? atoi(argv[1]) : 0;
}

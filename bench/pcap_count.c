/* The baseline of issue 5: libpcap's own read loop over a capture, counting packets and nothing more. */
#include <pcap/pcap.h>
#include <stdio.h>

int main(int argc, char **argv) {
    char err[PCAP_ERRBUF_SIZE];
    if (argc != 2) {
        fprintf(stderr, "usage: pcap_count FILE\n");
        return 2;
    }
    pcap_t *p = pcap_open_offline(argv[1], err);
    if (!p) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    struct pcap_pkthdr *h;
    const unsigned char *data;
    unsigned long n = 0;
    while (pcap_next_ex(p, &h, &data) == 1)
        n++;
    printf("%lu\n", n);
    pcap_close(p);
    return 0;
}

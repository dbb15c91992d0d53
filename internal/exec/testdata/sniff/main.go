// Command sniff is a test helper that runs inside a RUN step: it opens a
// packet socket on every interface of its network namespace and reads for
// a while, looking for a marker in the frames it sees. It prints
// "refused: ERR" if the socket cannot be opened, "seen" as soon as a
// frame holds the marker, or "blind N" (N frames read) when the time is up.
//
//	sniff MARKER SECONDS
package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: sniff MARKER SECONDS")
		os.Exit(2)
	}
	marker := []byte(os.Args[1])
	secs, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// ETH_P_ALL in network byte order.
	proto := int(uint16(unix.ETH_P_ALL)<<8 | uint16(unix.ETH_P_ALL)>>8)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, proto)
	if err != nil {
		fmt.Printf("refused: %v\n", err)
		return
	}
	tv := unix.Timeval{Usec: 200000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "listening")
	buf := make([]byte, 1<<17)
	frames := 0
	for end := time.Now().Add(time.Duration(secs) * time.Second); time.Now().Before(end); {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue
		}
		frames++
		if bytes.Contains(buf[:n], marker) {
			fmt.Println("seen")
			return
		}
	}
	fmt.Printf("blind %d\n", frames)
}

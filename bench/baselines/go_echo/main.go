// bench/baselines/go_echo — baseline B4 of scripts/bench: the echo server a
// Go programmer would write, one goroutine per connection on net.Conn (Go's
// runtime parks the goroutine on its netpoller when a read would block, as
// coop parks a fiber). Same command line and "listening on" line as the C++
// baselines (baseline.hpp), plus --threads N for GOMAXPROCS (default 1,
// beside echo_server's one runtime thread).
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

const bufferSize = 16 * 1024 // as echo_server's echo_buffer_size

const usage = "usage: echo_baseline_go --port N [--threads N]   (port 0: any free port; serves 127.0.0.1)"

func fail(msg string) {
	fmt.Fprintf(os.Stderr, "echo_baseline_go: error: %s\n", msg)
	os.Exit(2)
}

func parse(args []string) (port, threads int) {
	port, threads = -1, 1
	for i := 0; i < len(args); i++ {
		if args[i] == "--help" || args[i] == "-h" {
			fmt.Println(usage)
			os.Exit(0)
		}
		if i+1 >= len(args) {
			fail(usage)
		}
		n, err := strconv.Atoi(args[i+1])
		switch {
		case args[i] == "--port" && err == nil && n >= 0 && n <= 65535:
			port = n
		case args[i] == "--port":
			fail("--port: must be between 0 and 65535")
		case args[i] == "--threads" && err == nil && n >= 1 && n <= 1024:
			threads = n
		case args[i] == "--threads":
			fail("--threads: must be between 1 and 1024")
		default:
			fail(usage)
		}
		i++
	}
	if port < 0 {
		fail(usage)
	}
	return port, threads
}

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, bufferSize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF: the client is done
		}
	}
}

func main() {
	port, threads := parse(os.Args[1:])
	runtime.GOMAXPROCS(threads)
	ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "echo_baseline_go: %v\n", err)
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		ln.Close()
	}()
	fmt.Printf("listening on 127.0.0.1:%d\n", ln.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				os.Exit(0)
			}
			time.Sleep(10 * time.Millisecond) // out of descriptors, say
			continue
		}
		go serve(c)
	}
}

// Fan-out benchmark peer: Go with gorilla/websocket (Debian's
// golang-github-gorilla-websocket-dev, built offline with GOPATH=/usr/share/gocode and
// GO111MODULE=off). Each connection has the textbook pair of goroutines of gorilla's
// chat example: a reader (so control frames and closes are handled) and a writer fed
// by a small per-connection channel. Every 1/hz s the ticker builds ONE
// websocket.PreparedMessage of the tick {"t":"tick","seq":N,"at":<unix ms>,"pad":"xx.."}
// padded to -payload-bytes (framed once, shared by all connections) and offers it to
// every connection's channel; a connection whose channel is full skips the frame.
// Stops itself after -duration.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	sendQueueFrames = 16
	writeTimeout    = 10 * time.Second
)

type hub struct {
	mu    sync.Mutex
	conns map[*websocket.Conn]chan *websocket.PreparedMessage
}

func (h *hub) add(c *websocket.Conn) chan *websocket.PreparedMessage {
	ch := make(chan *websocket.PreparedMessage, sendQueueFrames)
	h.mu.Lock()
	h.conns[c] = ch
	h.mu.Unlock()
	return ch
}

func (h *hub) remove(c *websocket.Conn) {
	h.mu.Lock()
	if ch, ok := h.conns[c]; ok {
		delete(h.conns, c)
		close(ch)
	}
	h.mu.Unlock()
}

func (h *hub) broadcast(m *websocket.PreparedMessage) {
	h.mu.Lock()
	for _, ch := range h.conns {
		select {
		case ch <- m:
		default: // slow connection: skip this frame
		}
	}
	h.mu.Unlock()
}

func tickPayload(seq, atMs int64, payloadBytes int) []byte {
	bare := fmt.Sprintf(`{"t":"tick","seq":%d,"at":%d,"pad":""}`, seq, atMs)
	padding := payloadBytes - len(bare)
	if padding < 0 {
		padding = 0
	}
	return []byte(fmt.Sprintf(`{"t":"tick","seq":%d,"at":%d,"pad":"%s"}`, seq, atMs, strings.Repeat("x", padding)))
}

func main() {
	port := flag.Int("port", 0, "loopback port to listen on")
	hz := flag.Int("hz", 20, "ticks per second")
	payloadBytes := flag.Int("payload-bytes", 64, "payload bytes per frame")
	duration := flag.Duration("duration", 600*time.Second, "run time before stopping")
	flag.Parse()
	if *port <= 0 || *hz <= 0 || *duration <= 0 {
		log.Fatal("need -port, -hz, -duration > 0")
	}
	h := &hub{conns: make(map[*websocket.Conn]chan *websocket.PreparedMessage)}
	upgrader := websocket.Upgrader{
		ReadBufferSize:    1024,
		WriteBufferSize:   1024,
		EnableCompression: false,
		CheckOrigin:       func(*http.Request) bool { return true },
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		send := h.add(conn)
		go func() { // writer
			for m := range send {
				conn.SetWriteDeadline(time.Now().Add(writeTimeout))
				if err := conn.WritePreparedMessage(m); err != nil {
					break
				}
			}
			conn.Close()
		}()
		go func() { // reader
			defer h.remove(conn)
			for {
				if _, _, err := conn.NextReader(); err != nil {
					return
				}
			}
		}()
	})
	go func() {
		ticker := time.NewTicker(time.Second / time.Duration(*hz))
		defer ticker.Stop()
		var seq int64
		for range ticker.C {
			seq++
			payload := tickPayload(seq, time.Now().UnixMilli(), *payloadBytes)
			m, err := websocket.NewPreparedMessage(websocket.TextMessage, payload)
			if err != nil {
				log.Fatal(err)
			}
			h.broadcast(m)
		}
	}()
	time.AfterFunc(*duration, func() { os.Exit(0) })
	addr := fmt.Sprintf("127.0.0.1:%d", *port)
	log.Printf("go-gorilla listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}

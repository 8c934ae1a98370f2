// Command peer is a minimal Centrifugo-like server built on the centrifuge Go library as Debian
// bookworm packages it (0.15, client protocol v1). It is the side-by-side peer for gyre-bench:
// WebSocket clients authenticate with an HS256 JWT (sub, exp), the backend publishes through
// POST /api/publish {"channel","data"} and POST /api/broadcast {"channels","data"} (X-API-Key),
// and with -nats two or more peers form a cluster through a NATS server.
//
// Build (GOPATH mode, offline): see benches/peer/build.sh.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/centrifugal/centrifuge/_examples/custom_broker_nats/natsbroker"
)

type options struct {
	addr       string
	secret     string
	apiKey     string
	natsURL    string
	natsPrefix string
	queueMax   int
	readBuffer int
	verbose    bool
	// Channels "<historyNS>:..." keep a history, like a gyre namespace with history_size/ttl.
	historyNS   string
	historySize int
	historyTTL  time.Duration
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:8100", "listen address (port 0 = any free port; the address is logged)")
	flag.StringVar(&o.secret, "secret", "bench-secret", "HS256 secret of connection tokens")
	flag.StringVar(&o.apiKey, "api_key", "bench-key", "HTTP API key (X-API-Key or Authorization: apikey KEY); empty = no check")
	flag.StringVar(&o.natsURL, "nats", "", "NATS URL for a cluster broker; empty = in-memory broker")
	flag.StringVar(&o.natsPrefix, "nats_prefix", "centrifuge", "NATS subject prefix")
	flag.IntVar(&o.queueMax, "queue_max_size", 1<<20, "bytes queued per client before it is disconnected (Centrifugo's default)")
	flag.IntVar(&o.readBuffer, "read_buffer", 1024, "WebSocket read buffer size")
	flag.BoolVar(&o.verbose, "v", false, "log library info messages")
	flag.StringVar(&o.historyNS, "history_namespace", "hist", "channels NAMESPACE:... are published with history (empty = none)")
	flag.IntVar(&o.historySize, "history_size", 100, "publications kept per history channel")
	flag.DurationVar(&o.historyTTL, "history_ttl", 300*time.Second, "history retention")
	flag.Parse()
	return o
}

// --- HS256 connection tokens --------------------------------------------------------------

type tokenClaims struct {
	Sub  string          `json:"sub"`
	Exp  int64           `json:"exp"`
	Info json.RawMessage `json:"info,omitempty"`
}

var errInvalidToken = errors.New("invalid token")

func decodeSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// verifyToken checks an HS256 JWT's header and signature and returns its claims.
func verifyToken(token string, secret []byte) (tokenClaims, error) {
	var claims tokenClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return claims, errInvalidToken
	}
	header, err := decodeSegment(parts[0])
	if err != nil {
		return claims, errInvalidToken
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(header, &h) != nil || h.Alg != "HS256" {
		return claims, errInvalidToken
	}
	signature, err := decodeSegment(parts[2])
	if err != nil {
		return claims, errInvalidToken
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(signature, mac.Sum(nil)) {
		return claims, errInvalidToken
	}
	payload, err := decodeSegment(parts[1])
	if err != nil || json.Unmarshal(payload, &claims) != nil {
		return claims, errInvalidToken
	}
	return claims, nil
}

// --- node ---------------------------------------------------------------------------------

func newNode(o options) (*centrifuge.Node, error) {
	cfg := centrifuge.DefaultConfig
	cfg.LogLevel = centrifuge.LogLevelError
	if o.verbose {
		cfg.LogLevel = centrifuge.LogLevelInfo
	}
	cfg.LogHandler = func(e centrifuge.LogEntry) { log.Printf("centrifuge: %s %v", e.Message, e.Fields) }
	cfg.ClientQueueMaxSize = o.queueMax
	node, err := centrifuge.New(cfg)
	if err != nil {
		return nil, err
	}
	if o.natsURL != "" {
		broker, err := natsbroker.New(node, natsbroker.Config{Servers: o.natsURL, Prefix: o.natsPrefix})
		if err != nil {
			return nil, err
		}
		node.SetBroker(broker)
	}
	secret := []byte(o.secret)
	node.OnConnecting(func(_ context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		claims, err := verifyToken(e.Token, secret)
		if err != nil {
			return centrifuge.ConnectReply{}, centrifuge.DisconnectInvalidToken
		}
		if claims.Exp > 0 && claims.Exp < time.Now().Unix() {
			return centrifuge.ConnectReply{}, centrifuge.ErrorTokenExpired
		}
		creds := &centrifuge.Credentials{UserID: claims.Sub, ExpireAt: claims.Exp, Info: claims.Info}
		return centrifuge.ConnectReply{Credentials: creds}, nil
	})
	node.OnConnect(func(client *centrifuge.Client) {
		// Every channel is open to every client, as gyre's bench config has it.
		client.OnSubscribe(func(_ centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			cb(centrifuge.SubscribeReply{}, nil)
		})
	})
	return node, node.Run()
}

// --- HTTP API -----------------------------------------------------------------------------

type publishRequest struct {
	Channel  string          `json:"channel"`
	Channels []string        `json:"channels"`
	Data     json.RawMessage `json:"data"`
}

func authorized(r *http.Request, key string) bool {
	return key == "" || r.Header.Get("X-API-Key") == key || r.Header.Get("Authorization") == "apikey "+key
}

// publishOptions gives channels of the history namespace their history size and TTL.
func publishOptions(o options, channel string) []centrifuge.PublishOption {
	if o.historyNS != "" && strings.HasPrefix(channel, o.historyNS+":") {
		return []centrifuge.PublishOption{centrifuge.WithHistory(o.historySize, o.historyTTL)}
	}
	return nil
}

// apiHandler serves /api/publish (one channel) or /api/broadcast (many) in the v5 shape.
func apiHandler(node *centrifuge.Node, o options, broadcast bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		if !authorized(r, o.apiKey) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var req publishRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "malformed JSON", http.StatusBadRequest)
			return
		}
		channels := []string{req.Channel}
		if broadcast {
			channels = req.Channels
		}
		w.Header().Set("Content-Type", "application/json")
		for _, channel := range channels {
			if _, err := node.Publish(channel, req.Data, publishOptions(o, channel)...); err != nil {
				fmt.Fprintf(w, `{"error":{"code":100,"message":%q}}`, err.Error())
				return
			}
		}
		_, _ = w.Write([]byte(`{"result":{}}`))
	}
}

func statsHandler(node *centrifuge.Node) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		var mem runtime.MemStats
		runtime.ReadMemStats(&mem)
		_ = json.NewEncoder(w).Encode(map[string]interface{}{
			"clients": node.Hub().NumClients(), "goroutines": runtime.NumGoroutine(),
			"heap_inuse": mem.HeapInuse, "sys": mem.Sys,
		})
	}
}

func main() {
	o := parseFlags()
	node, err := newNode(o)
	if err != nil {
		log.Fatalf("node: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/connection/websocket", centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
		ReadBufferSize:     o.readBuffer,
		UseWriteBufferPool: true,
		CheckOrigin:        func(*http.Request) bool { return true },
	}))
	mux.HandleFunc("/api/publish", apiHandler(node, o, false))
	mux.HandleFunc("/api/broadcast", apiHandler(node, o, true))
	mux.HandleFunc("/stats", statsHandler(node))

	listener, err := net.Listen("tcp", o.addr)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	// Same shape as gyre's log line, so scripts find the port the same way.
	fmt.Printf("peer listening addr=%s nats=%q\n", listener.Addr(), o.natsURL)
	server := &http.Server{Handler: mux}
	go func() {
		if err := server.Serve(listener); err != nil && err != http.ErrServerClosed {
			log.Fatalf("serve: %v", err)
		}
	}()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = server.Shutdown(ctx)
	_ = node.Shutdown(ctx)
}

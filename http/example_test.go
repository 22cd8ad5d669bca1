package http_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	nethttp "net/http"
	"os"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/platform"
	"github.com/prometheus/client_golang/prometheus"
)

// A server serves a platform's services over TLS.
func ExampleServer() {
	var p *platform.Platform // from platform.Open
	reg := prometheus.NewRegistry()
	api := &khttp.Server{
		Tokens: p, Environments: p, Data: p, Audit: p,
		Logger:    slog.Default(),
		Registry:  reg,
		PublicURL: "https://127.0.0.1:8443",
	}
	srv := &nethttp.Server{Addr: "127.0.0.1:8443", Handler: api.Handler()}
	log.Fatal(srv.ListenAndServeTLS("server.pem", "server-key.pem"))
}

// A client creates an environment and stores a row in it.
func ExampleNewClient() {
	ca, err := os.ReadFile("keyhold-data/tls/ca.pem")
	if err != nil {
		log.Fatal(err)
	}
	c, err := khttp.NewClient("https://127.0.0.1:8443", ca, "<tenant id>", "<client id>", "<client secret>")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	e := &keyhold.Environment{DisplayName: "Contoso", Location: "europe", SKU: keyhold.SKUProduction}
	if err := c.CreateEnvironment(ctx, e); err != nil {
		log.Fatal(keyhold.ErrorCode(err), ": ", keyhold.ErrorMessage(err))
	}
	row, err := c.PutRow(ctx, e.ID, "accounts", "contoso", []byte(`{"name":"Contoso"}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(row.Version)
}

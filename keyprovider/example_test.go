//go:build keyhold_azure

package keyprovider_test

import (
	"context"
	"fmt"
	"log"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
	"github.com/keyhold/keyhold/keyprovider"
)

// A provider that reaches a key in a vault of another Keyhold server, as
// an enterprise policy's identity, tells a revoked key from a vault that
// is down.
func ExampleNewAzure() {
	var caPEM []byte // the other server's CA
	c, err := khttp.NewClient("https://keys.example.com:8443", caPEM, "tenant-id", "client-id", "client-secret")
	if err != nil {
		log.Fatal(err)
	}
	// The Client's transport connects {vault}.vault.localhost, the other
	// server's vault hosts, to that server.
	p := keyprovider.NewAzure(khttp.NewCredential(c), &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: c.HTTPClient()},
	})
	const keyID = "https://contoso-kv.vault.localhost:8443/keys/cmk"
	err = p.Probe(context.Background(), keyID)
	switch keyhold.ErrorCode(err) {
	case "":
		fmt.Println("the key is usable")
	case keyhold.CodeKeyVaultUnavailable:
		fmt.Println("the vault is down: retry later")
	default:
		fmt.Println("access to the key is lost:", err)
	}
}

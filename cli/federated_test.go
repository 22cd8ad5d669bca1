package cli

import (
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

func TestNewCmdSPFederatedAdd(t *testing.T) {
	got, err := parseOpts(t, nil, newCmdSPFederatedAdd, "--sp", "app-1", "--issuer", "https://i.example/t/v2.0", "--subject", "s-1")
	if checkParse(t, err, "") {
		sameOptions(t, got, &SPFederatedOptions{SP: "app-1", Issuer: "https://i.example/t/v2.0", Subject: "s-1",
			Audience: keyhold.FederatedAudience, Format: FormatTable})
	}
	_, err = parseOpts(t, nil, newCmdSPFederatedAdd, "--sp", "app-1", "--issuer", "https://i.example/t/v2.0")
	checkParse(t, err, "needs --subject")
	_, err = parseOpts(t, nil, newCmdSPFederatedRemove, "--sp", "app-1")
	checkParse(t, err, "needs --name")
}

// TestSPFederatedStack: against a real server, the administrator adds,
// lists and removes a federated credential with the CLI; an http issuer
// is refused with an error that quotes it, and adds nothing.
func TestSPFederatedStack(t *testing.T) {
	bootstrap := startServer(t)
	admin := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	admin.ok("login", "--bootstrap", bootstrap)
	var sp struct {
		AppID string `json:"appId"`
	}
	admin.okJSON(&sp, "identity", "sp", "create", "--name", "fed-app")
	out := admin.ok("identity", "sp", "federated-credential", "add", "--sp", sp.AppID, "--issuer", "https://platform.example/t/v2.0",
		"--subject", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/cmk", "--name", "platform-cmk")
	if !strings.Contains(out, "Added federated credential platform-cmk") || !strings.Contains(out, keyhold.FederatedAudience) {
		t.Fatalf("add printed\n%s", out)
	}
	admin.fails(1, "http://platform.example/t/v2.0", "identity", "sp", "federated-credential", "add", "--sp", sp.AppID,
		"--issuer", "http://platform.example/t/v2.0", "--subject", "x")
	var list []keyhold.FederatedCredential
	admin.okJSON(&list, "identity", "sp", "federated-credential", "list", "--sp", sp.AppID)
	if len(list) != 1 || list[0].Name != "platform-cmk" || list[0].Issuer != "https://platform.example/t/v2.0" {
		t.Fatalf("list = %+v", list)
	}
	admin.ok("identity", "sp", "federated-credential", "remove", "--sp", sp.AppID, "--name", "platform-cmk")
	admin.okJSON(&list, "identity", "sp", "federated-credential", "list", "--sp", sp.AppID)
	if len(list) != 0 {
		t.Fatalf("list after remove = %+v", list)
	}
	admin.fails(1, "platform-cmk", "identity", "sp", "federated-credential", "remove", "--sp", sp.AppID, "--name", "platform-cmk")
}

package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

func TestNewCmdGroupCreate(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    GroupCreateOptions
		wantErr string
	}{
		{name: "short flags", args: []string{"-n", "rg1", "-l", "westeurope"}, want: GroupCreateOptions{Name: "rg1", Location: "westeurope", Format: FormatTable}},
		{name: "tags and subscription", args: []string{"--name", "rg1", "--location", "eastus", "--tag", "env=prod", "--tag", "owner=ada", "--subscription", "s1", "-o", "json"},
			want: GroupCreateOptions{Name: "rg1", Location: "eastus", Tags: []string{"env=prod", "owner=ada"}, Subscription: "s1", Format: FormatJSON}},
		{name: "missing location", args: []string{"-n", "rg1"}, wantErr: "needs --location"},
		{name: "positional name", args: []string{"rg1", "-l", "eastus"}, wantErr: `got unexpected "rg1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdGroupCreate, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdGroupDelete(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    GroupDeleteOptions
		wantErr string
	}{
		{name: "confirmed", args: []string{"-n", "rg1", "--yes"}, want: GroupDeleteOptions{Name: "rg1", Confirmed: true}},
		{name: "needs --yes", args: []string{"-n", "rg1"}, wantErr: "pass --yes to confirm"},
		{name: "needs a name", args: []string{"-y"}, wantErr: "needs --name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdGroupDelete, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdProvider(t *testing.T) {
	got, err := parseOpts(t, nil, newCmdProviderRegister, "Microsoft.PowerPlatform", "--subscription", "s1")
	if checkParse(t, err, "") {
		sameOptions(t, got, &ProviderOptions{Namespace: "Microsoft.PowerPlatform", Subscription: "s1", Format: FormatTable})
	}
	_, err = parseOpts(t, nil, newCmdProviderShow)
	checkParse(t, err, "is missing <namespace>")
	_, err = parseOpts(t, nil, newCmdProviderList, "Microsoft.KeyVault")
	checkParse(t, err, `got unexpected "Microsoft.KeyVault"`)
}

func TestNewCmdRoleAssign(t *testing.T) {
	const scope = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv"
	tests := []struct {
		name    string
		args    []string
		want    RoleAssignOptions
		wantErr string
	}{
		{name: "role by name", args: []string{"--role", "Key Vault Crypto Service Encryption User", "--assignee", "p1", "--scope", scope},
			want: RoleAssignOptions{Role: "Key Vault Crypto Service Encryption User", Assignee: "p1", Scope: scope, Format: FormatTable}},
		{name: "role by id", args: []string{"--role", "acdd72a7-3385-48ef-bd42-f606fba81ae7", "--assignee", "p1", "--scope", "/subscriptions/s1", "-o", "json"},
			want: RoleAssignOptions{Role: "acdd72a7-3385-48ef-bd42-f606fba81ae7", Assignee: "p1", Scope: "/subscriptions/s1", Format: FormatJSON}},
		{name: "scope required", args: []string{"--role", "Reader", "--assignee", "p1"}, wantErr: "needs --scope"},
		{name: "all missing", wantErr: "needs --role and --assignee and --scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdRoleAssign, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
}

func TestNewCmdRoleListAndRemove(t *testing.T) {
	got, err := parseOpts(t, nil, newCmdRoleList, "--assignee", "p1", "--at-scope")
	if checkParse(t, err, "") {
		sameOptions(t, got, &RoleListOptions{Assignee: "p1", AtScope: true, Format: FormatTable})
	}
	rm, err := parseOpts(t, nil, newCmdRoleRemove, "a1", "--scope", "/subscriptions/s1")
	if checkParse(t, err, "") {
		sameOptions(t, rm, &RoleRemoveOptions{ID: "a1", Scope: "/subscriptions/s1"})
	}
	_, err = parseOpts(t, nil, newCmdRoleRemove, "a1")
	checkParse(t, err, "needs --scope")
}

func TestNewCmdIdentity(t *testing.T) {
	sp, err := parseOpts(t, nil, newCmdSPCreate, "--name", "automation")
	if checkParse(t, err, "") {
		sameOptions(t, sp, &SPCreateOptions{Name: "automation", Format: FormatTable})
	}
	_, err = parseOpts(t, nil, newCmdSPCreate)
	checkParse(t, err, "needs --name")

	users := []struct {
		name    string
		env     testEnv
		args    []string
		want    UserCreateOptions
		wantErr string
	}{
		{name: "generated password", args: []string{"--name", "Ada", "--upn", "ada@contoso.example"},
			want: UserCreateOptions{Name: "Ada", UPN: "ada@contoso.example", Format: FormatTable}},
		{name: "password from the environment", env: testEnv{"KEYHOLD_USER_PASSWORD": "from-env-pw"}, args: []string{"--name", "Ada", "--upn", "ada@contoso.example"},
			want: UserCreateOptions{Name: "Ada", UPN: "ada@contoso.example", Password: "from-env-pw", Format: FormatTable}},
		{name: "flag wins", env: testEnv{"KEYHOLD_USER_PASSWORD": "from-env-pw"}, args: []string{"--name", "Ada", "--upn", "a@b.c", "--password", "from-flag-pw"},
			want: UserCreateOptions{Name: "Ada", UPN: "a@b.c", Password: "from-flag-pw", Format: FormatTable}},
		{name: "upn required", args: []string{"--name", "Ada"}, wantErr: "needs --upn"},
	}
	for _, tt := range users {
		t.Run("user create/"+tt.name, func(t *testing.T) {
			got, err := parseOpts(t, tt.env, newCmdUserCreate, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}

	roles := []struct {
		name    string
		args    []string
		want    DirRoleOptions
		wantErr string
	}{
		{name: "assign by name", args: []string{"--role", "power platform administrator", "--assignee", "p1"},
			want: DirRoleOptions{Role: keyhold.RolePowerPlatformAdministrator, Assignee: "p1", Format: FormatTable}},
		{name: "assign by template id", args: []string{"--role", "44367163-eba1-44c3-98af-f5787879f96a", "--assignee", "p1"},
			want: DirRoleOptions{Role: keyhold.RoleDynamics365Administrator, Assignee: "p1", Format: FormatTable}},
		{name: "unknown role", args: []string{"--role", "Billing Administrator", "--assignee", "p1"}, wantErr: `"Billing Administrator" is not a directory role`},
		{name: "assignee required", args: []string{"--role", "Global Administrator"}, wantErr: "needs --assignee"},
	}
	for _, tt := range roles {
		t.Run("role assign/"+tt.name, func(t *testing.T) {
			got, err := parseOpts(t, nil, newCmdDirRoleAssign, tt.args...)
			if checkParse(t, err, tt.wantErr) {
				sameOptions(t, got, &tt.want)
			}
		})
	}
	list, err := parseOpts(t, nil, newCmdDirRoleList)
	if checkParse(t, err, "") {
		sameOptions(t, list, &DirRoleOptions{Format: FormatTable})
	}
}

func TestNewCmdEnvMember(t *testing.T) {
	add, err := parseOpts(t, nil, newCmdEnvMemberAdd, "e1", "p1")
	if checkParse(t, err, "") {
		sameOptions(t, add, &EnvMemberOptions{EnvID: "e1", PrincipalID: "p1", Format: FormatTable})
	}
	_, err = parseOpts(t, nil, newCmdEnvMemberAdd, "e1")
	checkParse(t, err, "is missing <principal-id>")
	list, err := parseOpts(t, nil, newCmdEnvMemberList, "e1", "-o", "json")
	if checkParse(t, err, "") {
		sameOptions(t, list, &EnvMemberOptions{EnvID: "e1", Format: FormatJSON})
	}
}

// TestARMStack runs the resource manager and directory commands against a
// real server: the bootstrap admin creates a service principal, gives it
// Reader on a resource group and membership of an environment, and the new
// principal signs in with the secret printed once and can do just that.
func TestARMStack(t *testing.T) {
	bootstrap := startServer(t)
	admin := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir()}}
	admin.ok("login", "--bootstrap", bootstrap)
	b, err := readBootstrap(bootstrap)
	if err != nil {
		t.Fatal(err)
	}

	if out := admin.ok("provider", "register", "microsoft.keyvault"); out != "Microsoft.KeyVault: Registered in subscription "+b.SubscriptionID+"\n" {
		t.Fatalf("provider register printed %q", out)
	}
	if out := admin.ok("provider", "list"); !strings.Contains(out, "Microsoft.PowerPlatform  NotRegistered") {
		t.Fatalf("provider list printed\n%s", out)
	}
	if out := admin.ok("group", "create", "-n", "contoso-rg", "-l", "West Europe", "--tag", "env=prod"); out != "Created resource group contoso-rg in westeurope\n" {
		t.Fatalf("group create printed %q", out)
	}
	admin.fails(1, "Error: Conflict: Invalid resource group location 'eastus'", "group", "create", "-n", "contoso-rg", "-l", "eastus")

	var sp newSPJSON
	admin.okJSON(&sp, "identity", "sp", "create", "--name", "automation")
	if sp.AppID == "" || sp.ObjectID == "" || !strings.HasPrefix(sp.ClientSecret, "khs_") || sp.TenantID != b.TenantID {
		t.Fatalf("sp create printed %+v", sp)
	}
	if out := admin.ok("identity", "sp", "list"); !strings.Contains(out, sp.AppID) || strings.Contains(out, sp.ClientSecret) {
		t.Fatalf("sp list printed\n%s", out)
	}
	scope := "/subscriptions/" + b.SubscriptionID + "/resourceGroups/contoso-rg"
	out := admin.ok("role", "assign", "--role", "Reader", "--assignee", sp.ObjectID, "--scope", strings.ToLower(scope))
	if !strings.HasPrefix(out, "Gave ServicePrincipal "+sp.ObjectID+` the role "Reader" at `+scope+" (assignment ") {
		t.Fatalf("role assign printed %q", out)
	}
	admin.fails(1, `Error: NotFound: no role called "Readers"`, "role", "assign", "--role", "Readers", "--assignee", sp.ObjectID, "--scope", scope)
	if out := admin.ok("role", "list", "--assignee", sp.ObjectID); !strings.Contains(out, "Reader") || !strings.Contains(out, scope) {
		t.Fatalf("role list printed\n%s", out)
	}

	// The new principal signs in with what sp create printed.
	app := &session{t: t, env: testEnv{"KEYHOLD_HOME": t.TempDir(), "KEYHOLD_CLIENT_SECRET": sp.ClientSecret}}
	app.ok("login", "--url", b.URL, "--ca-file", b.CAFile, "--tenant", sp.TenantID, "--client-id", sp.AppID, "--subscription", b.SubscriptionID)
	if out := app.ok("group", "list"); !strings.Contains(out, "contoso-rg") || !strings.Contains(out, "env=prod") {
		t.Fatalf("group list as the reader printed\n%s", out)
	}
	app.fails(1, "Error: AuthorizationFailed: The client '"+sp.AppID+"' with object id '"+sp.ObjectID+"' does not have authorization to perform action 'Microsoft.Resources/subscriptions/resourceGroups/write'",
		"group", "create", "-n", "other-rg", "-l", "westeurope")
	app.fails(1, "Error: Forbidden: ", "identity", "sp", "create", "--name", "escalate")
	app.fails(1, "Error: AuthorizationFailed: ", "role", "assign", "--role", "Owner", "--assignee", sp.ObjectID, "--scope", scope)

	// Environment membership gates the data.
	var env keyhold.Environment
	admin.okJSON(&env, "env", "create", "--name", "Members", "--location", "europe")
	app.fails(1, "Error: Forbidden: ", "row", "put", env.ID, "accounts", "a1", "--data", `{"n":1}`)
	if out := admin.ok("env", "member", "add", env.ID, sp.ObjectID); out != "Added "+sp.ObjectID+" to environment "+env.ID+"\n" {
		t.Fatalf("member add printed %q", out)
	}
	app.ok("row", "put", env.ID, "accounts", "a1", "--data", `{"n":1}`)
	if out := admin.ok("env", "member", "list", env.ID); !strings.Contains(out, sp.ObjectID) {
		t.Fatalf("member list printed\n%s", out)
	}
	admin.ok("env", "member", "remove", env.ID, sp.ObjectID)
	app.fails(1, "Error: Forbidden: ", "row", "get", env.ID, "accounts", "a1")

	// A user with a generated password, made a platform administrator.
	var u struct {
		ObjectID string `json:"objectId"`
		Password string `json:"password"`
	}
	admin.okJSON(&u, "identity", "user", "create", "--name", "Ada", "--upn", "ada@contoso.example")
	if u.ObjectID == "" || len(u.Password) < 8 {
		t.Fatalf("user create printed %+v", u)
	}
	if out := admin.ok("identity", "role", "assign", "--role", "Power Platform Administrator", "--assignee", u.ObjectID); !strings.HasPrefix(out, "Gave "+u.ObjectID+" the Power Platform Administrator role") {
		t.Fatalf("identity role assign printed %q", out)
	}
	if out := admin.ok("identity", "role", "list", "--assignee", u.ObjectID); !strings.Contains(out, "Power Platform Administrator") {
		t.Fatalf("identity role list printed\n%s", out)
	}
	admin.ok("identity", "role", "remove", "--role", "Power Platform Administrator", "--assignee", u.ObjectID)
	if out := admin.ok("identity", "role", "list", "--assignee", u.ObjectID); out != "No directory role assignments\n" {
		t.Fatalf("identity role list after remove printed %q", out)
	}

	// The saved login holds the subscription.
	raw, err := os.ReadFile(admin.env["KEYHOLD_HOME"] + "/" + loginFile)
	if err != nil {
		t.Fatal(err)
	}
	var l Login
	if err := json.Unmarshal(raw, &l); err != nil || l.SubscriptionID != b.SubscriptionID {
		t.Fatalf("login.json subscription %q (%v), want %q", l.SubscriptionID, err, b.SubscriptionID)
	}

	admin.fails(2, "pass --yes to confirm", "group", "delete", "-n", "contoso-rg")
	admin.ok("group", "delete", "-n", "contoso-rg", "--yes")
	if out := app.ok("group", "list"); out != "No resource groups\n" {
		t.Fatalf("group list after delete printed %q", out)
	}
}

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/spf13/cobra"
)

// loginFile is the name of the saved login in the home directory.
const loginFile = "login.json"

// loginVersion is the version of the login.json format written.
const loginVersion = 1

// loginScope is the scope "keyhold login" asks a token for: the environment
// and data APIs' audience, which the saved credentials are used for.
const loginScope = string(keyhold.AudiencePowerApps) + "/.default"

// Login is a saved login, the contents of $KEYHOLD_HOME/login.json (mode
// 0600). It holds the CA certificate itself rather than a path to it, so the
// login keeps working when the server's data directory moves.
type Login struct {
	Version      int    `json:"version"`
	URL          string `json:"url"`
	CAPEM        string `json:"caPem,omitempty"`
	TenantID     string `json:"tenantId"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	// SubscriptionID is the default subscription of the resource manager
	// commands (group, provider, role); "" if none was given.
	SubscriptionID string `json:"subscriptionId,omitempty"`
	// VaultDomain is the server's vault domain (vaults are
	// https://{vault}.{domain}:{port}/); "" for the default,
	// keyhold.DefaultVaultDomain.
	VaultDomain string `json:"vaultDomain,omitempty"`
	// A person's login (keyhold login --device-code): no client secret,
	// but a refresh token, replaced by its successor at each use
	// (login_device.go), and the person's user name.
	RefreshToken string `json:"refreshToken,omitempty"`
	UserName     string `json:"userName,omitempty"`
}

// loadLogin reads the login saved in home; ErrNotLoggedIn if there is none.
func loadLogin(home string) (*Login, error) {
	path := filepath.Join(home, loginFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotLoggedIn
	} else if err != nil {
		return nil, fmt.Errorf("reading the saved login: %w", err)
	}
	var l Login
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("saved login %s is not valid JSON (%v): run keyhold login again", path, err)
	}
	if l.Version != loginVersion {
		return nil, fmt.Errorf("saved login %s has version %d, this keyhold reads version %d: run keyhold login again", path, l.Version, loginVersion)
	}
	return &l, nil
}

// saveLogin writes l to home/login.json with mode 0600, creating home with
// mode 0700 if needed. The file is replaced in one rename, so a crash never
// leaves half a login.
func saveLogin(home string, l *Login) error {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", home, err)
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	t, err := newTempFile(filepath.Join(home, loginFile))
	if err != nil {
		return err
	}
	defer t.abort()
	if _, err := t.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing the login: %w", err)
	}
	return t.commit()
}

// bootstrapFile is the bootstrap.json a server writes on first start.
type bootstrapFile struct {
	URL            string `json:"url"`
	CAFile         string `json:"caFile"`
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	ClientID       string `json:"clientId"`
	ClientSecret   string `json:"clientSecret"`
	VaultDomain    string `json:"vaultDomain,omitempty"`
}

// LoginOptions are the parsed arguments of "keyhold login".
type LoginOptions struct {
	IO   *IOStreams
	Ctx  context.Context
	Home func() (string, error)
	Dial func(*Login) (keyhold.APIClient, error)

	Bootstrap    string // path of a bootstrap.json
	URL          string
	CAFile       string
	TenantID     string
	ClientID     string
	ClientSecret string // from --client-secret or KEYHOLD_CLIENT_SECRET
	Subscription string // default subscription; the bootstrap file's if not given
	// DeviceCode: a person signs in in a browser (login_device.go).
	DeviceCode bool
}

func newCmdLogin(f *Factory, runF func(*LoginOptions) error) *cobra.Command {
	opts := &LoginOptions{IO: f.IO, Home: f.Home, Dial: func(l *Login) (keyhold.APIClient, error) {
		c, err := f.Dial(l)
		if err != nil {
			return nil, err
		}
		return c, nil
	}}
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Check credentials for a server and save them",
		Long: `Log in to a Keyhold server: check the credentials by getting a token, then save
them in $KEYHOLD_HOME/login.json (default ~/.keyhold, mode 0600) for the other
commands. The CA certificate is copied into the login, so it keeps working if
the server's data directory moves.

People sign in with --device-code: keyhold prints a page and a code, the
person opens the page in any browser, enters the code, their user name and
password, and keyhold saves the sign-in (a refresh token, no password).
The server, CA and tenant come from the flags, the bootstrap file, or the
saved login.

Use the bootstrap file a server writes on its first start, or give the
credentials as flags; flags override the bootstrap file's values. Prefer the
KEYHOLD_CLIENT_SECRET environment variable to --client-secret, which other
users can see in the process list.`,
		Example: `  keyhold login --bootstrap ./keyhold-data/bootstrap.json
  KEYHOLD_CLIENT_SECRET=... keyhold login --url https://127.0.0.1:8443 \
      --ca-file ca.pem --tenant TENANT --client-id CLIENT
  keyhold login --device-code --url https://127.0.0.1:8443 --ca-file ca.pem --tenant TENANT`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Ctx = cmd.Context()
			if opts.DeviceCode {
				if opts.ClientID != "" || cmd.Flags().Changed("client-secret") {
					return usageErrorf("--device-code signs a person in: leave out --client-id and --client-secret")
				}
				if runF != nil {
					return runF(opts)
				}
				return deviceLoginRun(opts)
			}
			if !cmd.Flags().Changed("client-secret") {
				opts.ClientSecret = f.Getenv("KEYHOLD_CLIENT_SECRET")
			}
			if opts.Bootstrap == "" {
				var missing []string
				for _, m := range []struct{ flag, val string }{
					{"--url", opts.URL},
					{"--tenant", opts.TenantID},
					{"--client-id", opts.ClientID},
					{"--client-secret (or KEYHOLD_CLIENT_SECRET)", opts.ClientSecret},
				} {
					if m.val == "" {
						missing = append(missing, m.flag)
					}
				}
				if len(missing) > 0 {
					return usageErrorf("give --bootstrap <data>/bootstrap.json, or %s", strings.Join(missing, ", "))
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return loginRun(opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Bootstrap, "bootstrap", "", "Read the credentials from the `bootstrap.json` a server wrote on first start")
	fl.StringVar(&opts.URL, "url", "", "Server `URL`, e.g. https://127.0.0.1:8443")
	fl.StringVar(&opts.CAFile, "ca-file", "", "PEM `file` of the CA that signed the server's certificate (default: the system's CAs)")
	fl.StringVar(&opts.TenantID, "tenant", "", "Tenant `ID`")
	fl.StringVar(&opts.ClientID, "client-id", "", "Service principal's client `ID`")
	fl.StringVar(&opts.ClientSecret, "client-secret", "", "Service principal's client `secret` (default $KEYHOLD_CLIENT_SECRET)")
	fl.StringVar(&opts.Subscription, "subscription", "", "Default subscription `ID` of the group, provider and role commands (default: the bootstrap file's)")
	fl.BoolVar(&opts.DeviceCode, "device-code", false, "Sign in as a person, with a code entered in a browser")
	return cmd
}

func loginRun(opts *LoginOptions) error {
	l := &Login{Version: loginVersion}
	caFile := ""
	if opts.Bootstrap != "" {
		b, err := readBootstrap(opts.Bootstrap)
		if err != nil {
			return err
		}
		l.URL, l.TenantID, l.ClientID, l.ClientSecret, l.SubscriptionID = b.URL, b.TenantID, b.ClientID, b.ClientSecret, b.SubscriptionID
		l.VaultDomain = b.VaultDomain
		caFile = b.CAFile
	}
	for _, o := range []struct {
		dst *string
		val string
	}{
		{&l.URL, opts.URL}, {&caFile, opts.CAFile}, {&l.TenantID, opts.TenantID},
		{&l.ClientID, opts.ClientID}, {&l.ClientSecret, opts.ClientSecret}, {&l.SubscriptionID, opts.Subscription},
	} {
		if o.val != "" {
			*o.dst = o.val
		}
	}
	for _, m := range []struct{ name, val string }{
		{"url", l.URL}, {"tenantId", l.TenantID}, {"clientId", l.ClientID}, {"clientSecret", l.ClientSecret},
	} {
		if m.val == "" {
			return fmt.Errorf("bootstrap file %s has no %s: pass it as a flag", opts.Bootstrap, m.name)
		}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("reading the CA certificate: %w", err)
		}
		l.CAPEM = string(pem)
	}

	c, err := opts.Dial(l)
	if err != nil {
		return err
	}
	tok, err := c.Token(opts.Ctx, loginScope)
	if err != nil {
		return err
	}
	home, err := opts.Home()
	if err != nil {
		return err
	}
	if err := saveLogin(home, l); err != nil {
		return err
	}
	// The app id is what one signs in with; the object id is what the
	// audit log and role assignments name. Show both, so the user can
	// find themselves in either.
	who := "app " + l.ClientID
	if oid, err := tokenObjectID(tok.AccessToken); err == nil {
		who += ", object " + oid
	}
	fmt.Fprintf(opts.IO.Out, "Logged in to %s as %s (tenant %s)\n", l.URL, who, l.TenantID)
	return nil
}

// readBootstrap reads a bootstrap.json, and finds its CA file even if the
// data directory moved since the server wrote it (see findCAFile).
func readBootstrap(path string) (*bootstrapFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the bootstrap file: %w", err)
	}
	var b bootstrapFile
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("bootstrap file %s is not valid JSON: %v", path, err)
	}
	b.CAFile = findCAFile(path, b.CAFile)
	return &b, nil
}

// findCAFile returns caFile if it exists. Otherwise the data directory has
// likely moved (or the path was relative to where the server ran), so it
// looks for caFile's trailing path elements under the bootstrap file's
// directory: for /old/data/tls/ca.pem, <dir>/ca.pem, then <dir>/tls/ca.pem,
// and so on. If none exists it returns caFile, for the read to report.
func findCAFile(bootstrapPath, caFile string) string {
	if caFile == "" {
		return ""
	}
	if _, err := os.Stat(caFile); err == nil {
		return caFile
	}
	dir := filepath.Dir(bootstrapPath)
	parts := strings.Split(filepath.ToSlash(filepath.Clean(caFile)), "/")
	for k := 1; k <= len(parts); k++ {
		p := filepath.Join(dir, filepath.Join(parts[len(parts)-k:]...))
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return caFile
}

// LogoutOptions are the parsed arguments of "keyhold logout".
type LogoutOptions struct {
	IO   *IOStreams
	Home func() (string, error)
}

func newCmdLogout(f *Factory, runF func(*LogoutOptions) error) *cobra.Command {
	opts := &LogoutOptions{IO: f.IO, Home: f.Home}
	return &cobra.Command{
		Use:   "logout",
		Short: "Remove the saved login",
		Args:  exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(opts)
			}
			return logoutRun(opts)
		},
	}
}

func logoutRun(opts *LogoutOptions) error {
	home, err := opts.Home()
	if err != nil {
		return err
	}
	err = os.Remove(filepath.Join(home, loginFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintln(opts.IO.Out, "Not logged in")
		return nil
	case err != nil:
		return fmt.Errorf("removing the saved login: %w", err)
	}
	fmt.Fprintln(opts.IO.Out, "Logged out")
	return nil
}

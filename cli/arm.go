package cli

import (
	"errors"
	"strings"

	"github.com/keyhold/keyhold"
	khttp "github.com/keyhold/keyhold/http"
)

// The resource manager and directory commands ("keyhold group", "provider",
// "role", "identity", "env member") use the http package's Client through
// the ResourceManager and Directory contracts, with tokens for the
// management audience.

// armServices returns a function that connects with the saved login, as
// Factory.Client does, for the resource manager and directory commands.
func armServices(f *Factory) func() (keyhold.ARMClient, error) {
	return connect(f, func(c *khttp.Client) keyhold.ARMClient { return c })
}

// loginSubscriptionID returns a function that reads the default
// subscription of the saved login.
func loginSubscriptionID(f *Factory) func() (string, error) {
	return func() (string, error) {
		home, err := f.Home()
		if err != nil {
			return "", err
		}
		l, err := loadLogin(home)
		if err != nil {
			return "", err
		}
		if l.SubscriptionID == "" {
			return "", errors.New("no subscription: pass --subscription ID, or log in again with --bootstrap (whose file names one) or --subscription ID")
		}
		return l.SubscriptionID, nil
	}
}

// resolveSubscription returns the subscription a command acts on: flag,
// or the login's.
func resolveSubscription(flag string, login func() (string, error)) (string, error) {
	if flag != "" {
		return flag, nil
	}
	return login()
}

// parseTags parses --tag KEY=VALUE values.
func parseTags(tags []string) (map[string]string, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--tag %q is not valid: use --tag KEY=VALUE", t)
		}
		m[k] = v
	}
	return m, nil
}

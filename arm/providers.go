package arm

import (
	"context"
	"strings"

	"github.com/keyhold/keyhold"
)

// knownNamespaces lists the namespaces for messages.
func knownNamespaces() string {
	names := make([]string, len(keyhold.Providers()))
	for i, p := range keyhold.Providers() {
		names[i] = p.Namespace
	}
	return strings.Join(names, ", ")
}

func unknownNamespace(ns string) error {
	return keyhold.Errorf(keyhold.CodeNotFound, "The resource namespace '%s' is invalid: Keyhold serves %s", keyhold.Clip(ns), knownNamespaces())
}

// RequireRegistered checks, in tx, that a subscription has registered a
// resource provider namespace, as ARM does before it creates a resource of
// that namespace. Microsoft.Authorization and Microsoft.Resources are always
// registered. A missing registration is CodeMissingSubscriptionRegistration
// with ARM's message.
func RequireRegistered(ctx context.Context, tx keyhold.Tx, subscriptionID, namespace string) error {
	if p, ok := keyhold.Provider(namespace); ok && p.Always {
		return nil
	}
	r, err := tx.ProviderRegistration(ctx, subscriptionID, namespace)
	if err != nil && keyhold.ErrorCode(err) != keyhold.CodeNotFound {
		return err
	}
	if err == nil && r.State == keyhold.ProviderRegistered {
		return nil
	}
	return keyhold.Errorf(keyhold.CodeMissingSubscriptionRegistration,
		"The subscription '%s' is not registered to use namespace '%s'. See https://aka.ms/rps-not-found for how to register subscriptions.",
		subscriptionID, keyhold.CanonicalNamespace(namespace))
}

// registration returns a subscription's registration of a known namespace,
// NotRegistered when it has none.
func registration(ctx context.Context, tx keyhold.Tx, subID string, p keyhold.ProviderInfo) (*keyhold.ProviderRegistration, error) {
	if p.Always {
		return &keyhold.ProviderRegistration{SubscriptionID: subID, Namespace: p.Namespace, State: keyhold.ProviderRegistered}, nil
	}
	r, err := tx.ProviderRegistration(ctx, subID, p.Namespace)
	if keyhold.ErrorCode(err) == keyhold.CodeNotFound {
		return &keyhold.ProviderRegistration{SubscriptionID: subID, Namespace: p.Namespace, State: keyhold.ProviderNotRegistered}, nil
	}
	return r, err
}

// providerAction is the action that reads (or, with "register/action",
// registers) a namespace.
func providerAction(ns, verb string) string { return ns + "/" + verb }

// RegisterProvider registers a namespace for a subscription, which needs
// the "{namespace}/register/action" action on it (Owner, Contributor).
// Registering again changes nothing and succeeds. An unknown namespace is
// CodeNotFound, naming the ones Keyhold serves.
func (s *Service) RegisterProvider(ctx context.Context, subID, namespace string) (*keyhold.ProviderRegistration, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	p, ok := keyhold.Provider(namespace)
	if !ok {
		return nil, unknownNamespace(namespace)
	}
	var r *keyhold.ProviderRegistration
	err = s.store.Update(ctx, func(tx keyhold.Tx) error {
		scope := "/subscriptions/" + subID
		if err := Authorize(ctx, tx, id, scope, providerAction(p.Namespace, "register/action")); err != nil {
			return err
		}
		sub, err := SubscriptionFor(ctx, tx, id, subID)
		if err != nil {
			return err
		}
		if r, err = registration(ctx, tx, sub.ID, p); err != nil || r.State == keyhold.ProviderRegistered {
			return err
		}
		r = &keyhold.ProviderRegistration{SubscriptionID: sub.ID, Namespace: p.Namespace, State: keyhold.ProviderRegistered, UpdatedAt: s.clock.Now().UTC()}
		if err := tx.PutProviderRegistration(ctx, r); err != nil {
			return err
		}
		return s.audit(ctx, tx, id, "provider.register", "/subscriptions/"+sub.ID+"/providers/"+p.Namespace, "", "registered "+p.Namespace)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Provider returns a subscription's registration of a namespace
// (NotRegistered if it has none). Reading it needs a read action on the
// subscription (Reader).
func (s *Service) Provider(ctx context.Context, subID, namespace string) (*keyhold.ProviderRegistration, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	p, ok := keyhold.Provider(namespace)
	if !ok {
		return nil, unknownNamespace(namespace)
	}
	var r *keyhold.ProviderRegistration
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if err := Authorize(ctx, tx, id, "/subscriptions/"+subID, providerAction(p.Namespace, "read")); err != nil {
			return err
		}
		sub, err := SubscriptionFor(ctx, tx, id, subID)
		if err != nil {
			return err
		}
		r, err = registration(ctx, tx, sub.ID, p)
		return err
	})
	return r, err
}

// ListProviders returns a subscription's registration of every namespace
// Keyhold serves.
func (s *Service) ListProviders(ctx context.Context, subID string) ([]*keyhold.ProviderRegistration, error) {
	id, err := keyhold.Caller(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*keyhold.ProviderRegistration, 0, len(keyhold.Providers()))
	err = s.store.View(ctx, func(tx keyhold.Tx) error {
		if err := Authorize(ctx, tx, id, "/subscriptions/"+subID, "Microsoft.Resources/subscriptions/providers/read"); err != nil {
			return err
		}
		sub, err := SubscriptionFor(ctx, tx, id, subID)
		if err != nil {
			return err
		}
		for _, p := range keyhold.Providers() {
			r, err := registration(ctx, tx, sub.ID, p)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

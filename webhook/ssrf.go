package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/conveyor-run/conveyor"
)

// refused are address ranges that IsPrivate and the like leave out but
// that no public receiver has: "this network", shared address space
// (carrier-grade NAT) and benchmarking.
var refused = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// Private reports whether ip is an address a webhook must not reach
// unless private targets are allowed: loopback, private, link-local,
// multicast, unspecified or reserved. An IPv4 address mapped into IPv6
// counts as the IPv4 address.
func Private(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || !ip.IsValid() {
		return true
	}
	for _, p := range refused {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// lookupTimeout bounds the DNS lookup of CheckURL.
const lookupTimeout = 5 * time.Second

// CheckURL returns EINVALID unless raw is a valid webhook URL
// (conveyor.ValidWebhookURL) whose host resolves to public addresses
// only, or allowPrivate is set. The sender checks each address again
// when it connects (DNS may answer differently by then: rebinding).
func CheckURL(ctx context.Context, raw string, allowPrivate bool) error {
	if err := conveyor.ValidWebhookURL(raw); err != nil {
		return err
	}
	if allowPrivate {
		return nil
	}
	u, _ := url.Parse(raw) // valid: checked above
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if Private(ip) {
			return conveyor.Errorf(conveyor.EINVALID, "url %q points to a private address (%s); serve --webhook-allow-private allows it", raw, ip)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return conveyor.Errorf(conveyor.EINVALID, "url %q: host %s does not resolve", raw, host)
	}
	for _, ip := range ips {
		if Private(ip) {
			return conveyor.Errorf(conveyor.EINVALID, "url %q: %s resolves to a private address (%s); serve --webhook-allow-private allows it", raw, host, ip)
		}
	}
	return nil
}

// errPrivate is the error of a connection refused by dialControl.
var errPrivate = errors.New("refused to connect to a private address")

// dialControl refuses connections to private addresses: it runs after
// DNS, on the address actually dialled.
func dialControl(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	if Private(ip) {
		return fmt.Errorf("%w %s", errPrivate, ip)
	}
	return nil
}

package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"time"

	"github.com/conveyor-run/conveyor"
)

// Sign returns the webhook-signature header of a delivery as Standard
// Webhooks defines it: "v1," and the base64 of the HMAC-SHA256 of
// "id.timestamp.body" keyed with the secret's key (the base64-decoded
// part after whsec_). timestamp is the webhook-timestamp header, Unix
// seconds.
func Sign(secret, id string, timestamp time.Time, body []byte) (string, error) {
	key, err := conveyor.WebhookSecretKey(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(timestamp.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// NewSecret returns a new secret (conveyor.NewWebhookSecret).
func NewSecret() string { return conveyor.NewWebhookSecret() }

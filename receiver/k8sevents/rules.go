package k8sevents // import "github.com/k8sevents/otelcol-k8sevents/receiver/k8sevents"

import (
	"errors"
	"fmt"
	"regexp"
	"slices"

	"go.opentelemetry.io/collector/pdata/plog"
	corev1 "k8s.io/api/core/v1"
)

// Attributes that a rule with `alert: true` adds to the record.
const (
	// attrAlertRule names the rule that marked the record as an alert.
	attrAlertRule = "k8s.event.alert.rule"
	// attrAlertTitle is "<kind> <reason>", as the seed's alerts were titled.
	attrAlertTitle = "k8s.event.alert.title"
	// attrAlertMessage is "<kind> <name>: <message>", as the seed wrote it.
	attrAlertMessage = "k8s.event.alert.message"
)

// RuleConfig is one entry of `rules`. The first rule whose match fits an
// Event decides what happens to its record; later rules are not checked.
type RuleConfig struct {
	// Name identifies the rule; an alert carries it in k8s.event.alert.rule.
	// Required, unique.
	Name string `mapstructure:"name"`
	// Match says which Events the rule applies to. Default: empty, every
	// Event.
	Match MatchConfig `mapstructure:"match"`
	// Severity replaces the record's severity: info, warn, error or fatal.
	// Default: empty, the severity of the Event's type.
	Severity Severity `mapstructure:"severity"`
	// Alert marks the record as an alert: it gets k8s.event.alert.rule,
	// k8s.event.alert.title and k8s.event.alert.message. Default: false.
	Alert bool `mapstructure:"alert"`
	// Drop leaves the Event out: no record is emitted. Not with severity or
	// alert. Default: false.
	Drop bool `mapstructure:"drop"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// MatchConfig is the condition of a rule. Every field that is set must fit;
// a list fits when one of its entries equals the Event's value.
type MatchConfig struct {
	// Type is the Event's type: Normal or Warning (or Error, Critical).
	// Default: empty, any type.
	Type string `mapstructure:"type"`
	// Reasons are Event reasons such as BackOff or FailedScheduling.
	// Default: empty, any reason.
	Reasons []string `mapstructure:"reasons"`
	// Kinds are kinds of the involved object, such as Pod or Node.
	// Default: empty, any kind.
	Kinds []string `mapstructure:"kinds"`
	// Namespaces are the namespaces of the Events (a Node's Events are in
	// default). Default: empty, any namespace.
	Namespaces []string `mapstructure:"namespaces"`
	// Message is a regular expression (Go RE2 syntax) that must match part
	// of the Event's message; anchor it with ^ and $ to match all of it.
	// Default: empty, any message.
	Message string `mapstructure:"message"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// Severity is the severity a rule gives a record.
type Severity string

const (
	// SeverityInfo is SEVERITY_NUMBER_INFO (9).
	SeverityInfo Severity = "info"
	// SeverityWarn is SEVERITY_NUMBER_WARN (13).
	SeverityWarn Severity = "warn"
	// SeverityError is SEVERITY_NUMBER_ERROR (17).
	SeverityError Severity = "error"
	// SeverityFatal is SEVERITY_NUMBER_FATAL (21).
	SeverityFatal Severity = "fatal"
)

var severityNumbers = map[Severity]plog.SeverityNumber{
	SeverityInfo:  plog.SeverityNumberInfo,
	SeverityWarn:  plog.SeverityNumberWarn,
	SeverityError: plog.SeverityNumberError,
	SeverityFatal: plog.SeverityNumberFatal,
}

// eventTypes are the types a rule may match: Kubernetes' two, and the two
// more that severityOf knows.
var eventTypes = []string{corev1.EventTypeNormal, corev1.EventTypeWarning, "Error", "Critical"}

// rule is a RuleConfig ready to be applied.
type rule struct {
	name      string
	eventType string
	// Lists are searched linearly: rules name a few entries each, and a
	// map lookup would cost more than comparing them.
	reasons, kinds, namespaces []string
	message                    *regexp.Regexp
	severity                   plog.SeverityNumber // 0: unchanged
	alert, drop                bool
}

// compileRules checks the rules and compiles them. Every error names the
// YAML key under the receiver, such as rules[2]::match::message.
func compileRules(cfgs []RuleConfig) ([]rule, error) {
	var errs []error
	rules := make([]rule, 0, len(cfgs))
	seen := make(map[string]int, len(cfgs))
	for i, rc := range cfgs {
		key := fmt.Sprintf("rules[%d]", i)
		r := rule{
			name: rc.Name, eventType: rc.Match.Type,
			reasons: rc.Match.Reasons, kinds: rc.Match.Kinds, namespaces: rc.Match.Namespaces,
			alert: rc.Alert, drop: rc.Drop,
		}
		switch j, dup := seen[rc.Name]; {
		case rc.Name == "":
			errs = append(errs, fmt.Errorf("%s::name: must be set; it names the rule in k8s.event.alert.rule", key))
		case dup:
			errs = append(errs, fmt.Errorf("%s::name: %q is already the name of rules[%d]; names must be unique", key, rc.Name, j))
		default:
			seen[rc.Name] = i
		}
		if rc.Match.Type != "" && !slices.Contains(eventTypes, rc.Match.Type) {
			errs = append(errs, fmt.Errorf("%s::match::type: %q is not an Event type; use Normal or Warning (or Error, Critical)", key, rc.Match.Type))
		}
		errs = append(errs, nonEmpty(key+"::match::reasons", rc.Match.Reasons)...)
		errs = append(errs, nonEmpty(key+"::match::kinds", rc.Match.Kinds)...)
		errs = append(errs, validateNamespaces(key+"::match::namespaces", rc.Match.Namespaces)...)
		if rc.Match.Message != "" {
			re, err := regexp.Compile(rc.Match.Message)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s::match::message: not a regular expression (Go RE2 syntax): %w", key, err))
			}
			r.message = re
		}
		if rc.Severity != "" {
			n, ok := severityNumbers[rc.Severity]
			if !ok {
				errs = append(errs, fmt.Errorf("%s::severity: %q is not supported; use one of %s, %s, %s, %s",
					key, rc.Severity, SeverityInfo, SeverityWarn, SeverityError, SeverityFatal))
			}
			r.severity = n
		}
		if rc.Drop && (rc.Alert || rc.Severity != "") {
			errs = append(errs, fmt.Errorf("%s::drop: a dropped Event has no record to mark; leave out severity and alert, or drop", key))
		}
		rules = append(rules, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rules, nil
}

func nonEmpty(key string, values []string) []error {
	var errs []error
	for i, v := range values {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s[%d]: must not be empty", key, i))
		}
	}
	return errs
}

// firstMatch is the index of the first rule that fits ev, or -1.
func firstMatch(rules []rule, ev *corev1.Event) int {
	for i := range rules {
		if rules[i].matches(ev) {
			return i
		}
	}
	return -1
}

func (r *rule) matches(ev *corev1.Event) bool {
	return (r.eventType == "" || r.eventType == ev.Type) &&
		(len(r.reasons) == 0 || slices.Contains(r.reasons, ev.Reason)) &&
		(len(r.kinds) == 0 || slices.Contains(r.kinds, ev.InvolvedObject.Kind)) &&
		(len(r.namespaces) == 0 || slices.Contains(r.namespaces, ev.Namespace)) &&
		(r.message == nil || r.message.MatchString(ev.Message))
}

// apply sets the rule's severity and alert on a record made from ev.
func (r *rule) apply(lr plog.LogRecord, ev *corev1.Event) {
	if r.severity != plog.SeverityNumberUnspecified {
		lr.SetSeverityNumber(r.severity)
	}
	if !r.alert {
		return
	}
	attrs := lr.Attributes()
	kind := ev.InvolvedObject.Kind
	attrs.PutStr(attrAlertRule, r.name)
	attrs.PutStr(attrAlertTitle, kind+" "+ev.Reason)
	// The body holds the message made valid UTF-8.
	attrs.PutStr(attrAlertMessage, kind+" "+ev.InvolvedObject.Name+": "+lr.Body().Str())
}

// SeverityText is what the records' severity text holds.
type SeverityText string

const (
	// SeverityTextEventType is the Event's type (Normal, Warning), as the
	// contrib k8s_events receiver writes it.
	SeverityTextEventType SeverityText = "event_type"
	// SeverityTextLevel is the name of the severity number (INFO, WARN,
	// ERROR, FATAL), from which Loki derives detected_level info, warn,
	// error, fatal.
	SeverityTextLevel SeverityText = "level"
)

// levelText is the short name the OpenTelemetry log data model gives a
// severity number, or "" for one without a name here.
func levelText(n plog.SeverityNumber) string {
	switch {
	case n >= plog.SeverityNumberFatal:
		return "FATAL"
	case n >= plog.SeverityNumberError:
		return "ERROR"
	case n >= plog.SeverityNumberWarn:
		return "WARN"
	case n >= plog.SeverityNumberInfo:
		return "INFO"
	default:
		return ""
	}
}

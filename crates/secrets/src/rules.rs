//! The built-in rules: one per credential format, each with the keywords that must appear on
//! a line before its pattern is tried there.
//!
//! Patterns are byte regexes without Unicode classes (credentials are ASCII), compiled once by
//! the [`Scanner`](crate::Scanner). A pattern's first capture group is the secret; without one,
//! the whole match is. Keywords are matched without regard to ASCII case.

/// How a rule finds its candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Matcher {
    /// A regex tried on each line holding a keyword.
    Regex(&'static str),
    /// `name = value` around the keyword: the name holding the keyword, an operator (`=`,
    /// `:`, `:=`, `=>`, `?=`, after an optional `: Type`), a quoted or bare value; parsed by
    /// code at the keyword, not by a regex over the line, because secret-sounding words are
    /// common in code and this runs at each of them.
    Assignment,
    /// A PEM or OpenSSH private-key block, possibly spread over many lines, JSON-escaped
    /// (`\n`) or commented out line by line; matched by code, not a regex.
    PrivateKeyBlock,
}

/// What a candidate must pass besides its pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Check {
    /// A token of a fixed format: at least this much Shannon entropy (bits a character).
    Token { min_entropy: f64 },
    /// A JWT: its header decodes to a JSON object naming an `alg`.
    Jwt,
    /// The password of a URL: not a placeholder, not a documentation host.
    UrlPassword,
    /// `Authorization: Basic`: decodes to `user:password`.
    BasicAuth,
    /// A value assigned to a secret-sounding name: the generic rule's look-alike rejection.
    Assignment,
    /// A private-key block (checked by its matcher).
    PrivateKey,
}

/// One detection rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable id, used in reports, SARIF `ruleId` and allow-lists, e.g. `github-pat`.
    pub id: &'static str,
    /// What it detects, for people.
    pub description: &'static str,
    /// Words of which one must be on a line (ASCII case ignored) for the rule to run there.
    pub keywords: &'static [&'static str],
    /// A generic rule (high-entropy assignment, bearer token, URL password) yields to a
    /// format-specific one that matches the same bytes.
    pub generic: bool,
    pub(crate) matcher: Matcher,
    pub(crate) check: Check,
}

impl Rule {
    /// The rule's regex, if it has one (the private-key rule is matched by code).
    pub fn pattern(&self) -> Option<&'static str> {
        match self.matcher {
            Matcher::Regex(pattern) => Some(pattern),
            Matcher::PrivateKeyBlock | Matcher::Assignment => None,
        }
    }
}

/// Entropy a fixed-format token needs: rejects `ghp_aaaa…`, `sk_live_0000…` and the like.
const TOKEN_ENTROPY: f64 = 3.0;

const fn token(
    id: &'static str,
    description: &'static str,
    keywords: &'static [&'static str],
    pattern: &'static str,
) -> Rule {
    Rule {
        id,
        description,
        keywords,
        generic: false,
        matcher: Matcher::Regex(pattern),
        check: Check::Token {
            min_entropy: TOKEN_ENTROPY,
        },
    }
}

const fn checked(
    id: &'static str,
    description: &'static str,
    keywords: &'static [&'static str],
    pattern: &'static str,
    check: Check,
    generic: bool,
) -> Rule {
    Rule {
        id,
        description,
        keywords,
        generic,
        matcher: Matcher::Regex(pattern),
        check,
    }
}

/// Rule id of an AWS secret access key found beside its access key id (see the scanner's
/// pairing pass); also a regex rule of its own for `aws_secret_access_key = ...`.
pub(crate) const AWS_SECRET_RULE: &str = "aws-secret-access-key";
/// Rule id of the AWS access key id, which the pairing pass starts from.
pub(crate) const AWS_KEY_ID_RULE: &str = "aws-access-key-id";

/// Words of which one is in every name the generic rule accepts (see
/// `checks::is_secret_name`): `pass` covers password, passwd, passphrase; `key` covers
/// api_key, apiKey, access-key, signing_key, and the like.
const SECRET_NAME_KEYWORDS: &[&str] = &["pass", "pwd", "secret", "token", "credential", "key"];

/// The built-in rules.
pub fn rules() -> &'static [Rule] {
    RULES
}

static RULES: &[Rule] = &[
    // Cloud.
    token(
        AWS_KEY_ID_RULE,
        "AWS access key ID",
        &["akia", "asia", "abia", "acca", "a3t"],
        r"\b((?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16})\b",
    ),
    checked(
        AWS_SECRET_RULE,
        "AWS secret access key",
        &[
            "secret_access_key",
            "secretaccesskey",
            "secret-access-key",
            "aws_secret",
            "awssecret",
        ],
        r#"(?i)(?:aws[_.-]?)?secret[_.-]?(?:access[_.-]?)?key["']?\s*(?:=>|:=|[:=])\s*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#,
        Check::Token { min_entropy: 3.5 },
        false,
    ),
    token(
        "gcp-api-key",
        "Google Cloud API key",
        &["aiza"],
        r"\b(AIza[0-9A-Za-z_-]{35})(?:[^0-9A-Za-z_-]|$)",
    ),
    token(
        "gcp-oauth-client-secret",
        "Google OAuth client secret",
        &["gocspx-"],
        r"\b(GOCSPX-[0-9A-Za-z_-]{28})(?:[^0-9A-Za-z_-]|$)",
    ),
    token(
        "azure-storage-key",
        "Azure storage account key",
        &["accountkey", "storage", "access_key", "accesskey"],
        r#"(?i)(?:AccountKey|storage[_-]?(?:account[_-]?)?key|access[_-]?key)["']?\s*[:=]\s*["']?([A-Za-z0-9+/]{86}==)"#,
    ),
    token(
        "azure-sas-token",
        "Azure shared access signature",
        &["sig="],
        r"(?i)[?&;]sv=[0-9-]{10}&[^\s]*?\bsig=([A-Za-z0-9%+/]{40,}(?:%3D|=)*)",
    ),
    token(
        "azure-ad-client-secret",
        "Azure AD (Entra ID) client secret",
        &["q~"],
        r"(?:^|[^A-Za-z0-9_~.-])([A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34})(?:[^A-Za-z0-9_~.-]|$)",
    ),
    token(
        "digitalocean-token",
        "DigitalOcean token",
        &["dop_v1_", "doo_v1_", "dor_v1_"],
        r"\b(do[opr]_v1_[a-f0-9]{64})\b",
    ),
    token(
        "heroku-api-key",
        "Heroku API key",
        &["heroku"],
        r#"(?i)heroku[A-Za-z0-9_ .-]{0,20}["']?\s*[:=]\s*["']?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b"#,
    ),
    // VCS, registries and CI.
    token(
        "github-pat",
        "GitHub personal access token (classic)",
        &["ghp_"],
        r"\b(ghp_[A-Za-z0-9]{36})\b",
    ),
    token(
        "github-fine-grained-pat",
        "GitHub fine-grained personal access token",
        &["github_pat_"],
        r"\b(github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})\b",
    ),
    token(
        "github-oauth-token",
        "GitHub OAuth access token",
        &["gho_"],
        r"\b(gho_[A-Za-z0-9]{36})\b",
    ),
    token(
        "github-app-token",
        "GitHub App user-to-server or installation token",
        &["ghu_", "ghs_"],
        r"\b(gh[us]_[A-Za-z0-9]{36})\b",
    ),
    token(
        "github-refresh-token",
        "GitHub refresh token",
        &["ghr_"],
        r"\b(ghr_[A-Za-z0-9]{36,76})\b",
    ),
    token(
        "gitlab-token",
        "GitLab token (personal, deploy, runner, CI job, feed, OAuth)",
        &[
            "glpat-", "gldt-", "glrt-", "glcbt-", "glft-", "glsoat-", "glimt-", "glagent-",
            "gloas-",
        ],
        r"\b((?:glpat|gldt|glrt|glcbt|glft|glsoat|glimt|glagent|gloas)-[0-9A-Za-z_-]{20,})",
    ),
    token(
        "gitlab-pipeline-trigger-token",
        "GitLab pipeline trigger token",
        &["glptt-"],
        r"\b(glptt-[0-9a-f]{40})\b",
    ),
    token(
        "gitlab-runner-registration-token",
        "GitLab runner registration token",
        &["gr1348941"],
        r"\b(GR1348941[0-9A-Za-z_-]{20})",
    ),
    token(
        "bitbucket-app-password",
        "Bitbucket app password",
        &["atbb"],
        r"\b(ATBB[A-Za-z0-9_=.-]{28,})",
    ),
    token(
        "atlassian-api-token",
        "Atlassian or Bitbucket access token",
        &["atatt3", "atctt3"],
        r"\b(AT[AC]TT3[A-Za-z0-9_=-]{150,})",
    ),
    token(
        "npm-token",
        "npm access token",
        &["npm_"],
        r"\b(npm_[A-Za-z0-9]{36})\b",
    ),
    token(
        "npmrc-auth",
        "Registry credential in an .npmrc",
        &["_authtoken", "_auth=", "_password="],
        r#"(?i)(?:_authToken|_auth|_password)\s*=\s*["']?([^\s"']{16,})"#,
    ),
    token(
        "pypi-token",
        "PyPI upload token",
        &["pypi-age"],
        r"\b(pypi-AgE[A-Za-z0-9_-]{70,})",
    ),
    token(
        "docker-hub-pat",
        "Docker Hub personal access token",
        &["dckr_pat_"],
        r"\b(dckr_pat_[A-Za-z0-9_-]{27,})",
    ),
    token(
        "circleci-token",
        "CircleCI personal or project token",
        &["ccipat_", "cciprj_"],
        r"\b(CCI(?:PAT|PRJ)_[A-Za-z0-9]{22}_[a-f0-9]{40})\b",
    ),
    token(
        "buildkite-token",
        "Buildkite API token",
        &["bkua_"],
        r"\b(bkua_[a-z0-9]{40})\b",
    ),
    token(
        "terraform-cloud-token",
        "Terraform Cloud / Enterprise API token",
        &[".atlasv1."],
        r"\b([A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70})",
    ),
    token(
        "vault-token",
        "HashiCorp Vault token",
        &["hvs.", "hvb."],
        r"\b(hv[sb]\.[A-Za-z0-9_-]{24,})",
    ),
    // Chat and webhooks.
    token(
        "slack-token",
        "Slack token",
        &[
            "xoxb-", "xoxp-", "xoxa-", "xoxo-", "xoxs-", "xoxr-", "xoxe-",
        ],
        r"\b(xox[abposre]-[0-9]{8,}-[0-9A-Za-z-]{10,})",
    ),
    token(
        "slack-app-token",
        "Slack app-level token",
        &["xapp-"],
        r"\b(xapp-[0-9]-[A-Z0-9]+-[0-9]+-[a-z0-9]+)\b",
    ),
    token(
        "slack-webhook",
        "Slack incoming webhook URL",
        &["hooks.slack.com"],
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(T[A-Z0-9]{6,}/[AB][A-Z0-9]{6,}/[A-Za-z0-9]{20,})",
    ),
    token(
        "discord-webhook",
        "Discord webhook URL",
        &["discord"],
        r"discord(?:app)?\.com/api/webhooks/([0-9]{15,20}/[A-Za-z0-9_-]{60,70})",
    ),
    token(
        "discord-bot-token",
        "Discord bot token",
        &["discord"],
        r"\b([MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40})\b",
    ),
    token(
        "telegram-bot-token",
        "Telegram bot token",
        &[":aa"],
        r"\b([0-9]{8,10}:AA[0-9A-Za-z_-]{33})(?:[^0-9A-Za-z_-]|$)",
    ),
    token(
        "teams-webhook",
        "Microsoft Teams incoming webhook URL",
        &["webhook.office.com"],
        r"(https://[a-z0-9-]+\.webhook\.office\.com/webhookb2/[0-9a-f-]{36}@[0-9a-f-]{36}/IncomingWebhook/[0-9a-f]{32}/[0-9a-f-]{36})",
    ),
    token(
        "google-chat-webhook",
        "Google Chat webhook URL",
        &["chat.googleapis.com"],
        r"(https://chat\.googleapis\.com/v1/spaces/[A-Za-z0-9_-]+/messages\?key=[A-Za-z0-9_-]+&token=[A-Za-z0-9_=%-]+)",
    ),
    token(
        "sendgrid-api-key",
        "SendGrid API key",
        &["sg."],
        r"\b(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})\b",
    ),
    token(
        "mailgun-api-key",
        "Mailgun API key",
        &["key-"],
        r"\b(key-[0-9a-f]{32})\b",
    ),
    // Payment.
    token(
        "stripe-secret-key",
        "Stripe secret or restricted key",
        &["sk_live_", "sk_test_", "rk_live_", "rk_test_"],
        r"\b([sr]k_(?:live|test)_[0-9A-Za-z]{24,247})\b",
    ),
    token(
        "stripe-webhook-secret",
        "Stripe webhook signing secret",
        &["whsec_"],
        r"\b(whsec_[A-Za-z0-9+/]{32,})",
    ),
    token(
        "square-token",
        "Square access token or OAuth secret",
        &["sq0atp-", "sq0csp-", "sq0idp-"],
        r"\b(sq0(?:atp|csp|idp)-[0-9A-Za-z_-]{22,43})",
    ),
    token(
        "square-access-token",
        "Square production access token",
        &["eaaa"],
        r"\b(EAAA[A-Za-z0-9_-]{60})(?:[^A-Za-z0-9_-]|$)",
    ),
    token(
        "braintree-access-token",
        "PayPal Braintree access token",
        &["access_token$"],
        r"(access_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32})",
    ),
    token(
        "shopify-token",
        "Shopify access token or shared secret",
        &["shpat_", "shpca_", "shppa_", "shpss_"],
        r"\b(shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})\b",
    ),
    // Model providers.
    token(
        "openai-api-key",
        "OpenAI API key",
        &["sk-proj-", "sk-svcacct-", "sk-admin-", "t3blbkfj"],
        r"\b(sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}|[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}))",
    ),
    token(
        "anthropic-api-key",
        "Anthropic API key",
        &["sk-ant-"],
        r"\b(sk-ant-(?:api|admin|sid|oat)[0-9]{2}-[A-Za-z0-9_-]{80,})",
    ),
    token(
        "huggingface-token",
        "Hugging Face access token",
        &["hf_", "api_org_"],
        r"\b((?:hf_|api_org_)[A-Za-z]{34})\b",
    ),
    token(
        "groq-api-key",
        "Groq API key",
        &["gsk_"],
        r"\b(gsk_[A-Za-z0-9]{52})\b",
    ),
    token(
        "replicate-api-token",
        "Replicate API token",
        &["r8_"],
        r"\b(r8_[A-Za-z0-9]{37})\b",
    ),
    token(
        "perplexity-api-key",
        "Perplexity API key",
        &["pplx-"],
        r"\b(pplx-[A-Za-z0-9]{48})\b",
    ),
    token(
        "xai-api-key",
        "xAI API key",
        &["xai-"],
        r"\b(xai-[A-Za-z0-9]{80})\b",
    ),
    // Other SaaS.
    token(
        "linear-api-key",
        "Linear API key",
        &["lin_api_"],
        r"\b(lin_api_[A-Za-z0-9]{40})\b",
    ),
    token(
        "postman-api-key",
        "Postman API key",
        &["pmak-"],
        r"\b(PMAK-[a-f0-9]{24}-[a-f0-9]{34})\b",
    ),
    token(
        "newrelic-api-key",
        "New Relic user API key",
        &["nrak-"],
        r"\b(NRAK-[A-Z0-9]{27})\b",
    ),
    token(
        "databricks-token",
        "Databricks access token",
        &["dapi"],
        r"\b(dapi[a-f0-9]{32}(?:-[0-9])?)\b",
    ),
    token(
        "supabase-token",
        "Supabase access token",
        &["sbp_"],
        r"\b(sbp_[a-f0-9]{40})\b",
    ),
    token(
        "sentry-token",
        "Sentry auth token",
        &["sntrys_", "sntryu_"],
        r"\b(sntry[su]_[A-Za-z0-9+/=_-]{40,})",
    ),
    token(
        "doppler-token",
        "Doppler token",
        &[
            "dp.pt.",
            "dp.st.",
            "dp.sa.",
            "dp.ct.",
            "dp.scim.",
            "dp.audit.",
        ],
        r"\b(dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44})\b",
    ),
    token(
        "grafana-token",
        "Grafana service-account or cloud token",
        &["glsa_", "glc_"],
        r"\b(glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,}={0,2})",
    ),
    // Keys and tokens with structure.
    Rule {
        id: "private-key",
        description: "Private key (PEM, OpenSSH, PGP)",
        keywords: &["private key"],
        generic: false,
        matcher: Matcher::PrivateKeyBlock,
        check: Check::PrivateKey,
    },
    token(
        "putty-private-key",
        "PuTTY private key",
        &["private-lines:"],
        r"Private-Lines: *[0-9]+\r?\n((?:[A-Za-z0-9+/=]{4,}\r?\n){1,64})",
    ),
    token(
        "age-secret-key",
        "age secret key",
        &["age-secret-key-1"],
        r"\b(AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})\b",
    ),
    checked(
        "jwt",
        "JSON Web Token",
        &["eyj"],
        r"\b(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})",
        Check::Jwt,
        false,
    ),
    checked(
        "url-password",
        "Password in a connection string or URL",
        &["://"],
        r#"\b[a-zA-Z][a-zA-Z0-9+.-]{1,24}://([^\s:/?#@'"`<>\\]{1,128}):([^\s/?#@'"`<>\\]{1,256})@([A-Za-z0-9.\[\]_-]+)"#,
        Check::UrlPassword,
        true,
    ),
    checked(
        "basic-auth-header",
        "HTTP Basic credentials",
        &["basic"],
        r#"(?i)authorization["']?\s*[:=]\s*["']?basic\s+([A-Za-z0-9+/]{12,}={0,2})"#,
        Check::BasicAuth,
        true,
    ),
    checked(
        "bearer-token",
        "Bearer token",
        &["bearer"],
        r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{20,}=*)",
        Check::Token { min_entropy: 3.5 },
        true,
    ),
    Rule {
        id: "generic-secret",
        description: "High-entropy value assigned to a secret-sounding name",
        keywords: SECRET_NAME_KEYWORDS,
        generic: true,
        matcher: Matcher::Assignment,
        check: Check::Assignment,
    },
];

//! The corpus: planted secrets of many formats in realistic places, and clean files full of
//! look-alikes. Recall and precision are measured over it and must reach 95% and 90%.

use std::collections::BTreeSet;

use cap_secrets::{ScanLimits, Scanner};

use super::support::{CorpusFile, Gen, p};

/// The files holding planted secrets.
pub fn planted(g: &mut Gen) -> Vec<CorpusFile> {
    let mut files = Vec::new();

    // Cloud.
    let (id, secret) = (g.aws_key_id(), g.aws_secret());
    files.push(
        CorpusFile::new("deploy/aws/credentials")
            .line("[default]")
            .secret(format!("aws_access_key_id = {id}"), &id)
            .secret(format!("aws_secret_access_key = {secret}"), &secret)
            .line("region = eu-west-1"),
    );
    let (id, secret) = (g.aws_key_id(), g.aws_secret());
    files.push(
        CorpusFile::new("ops/credentials.csv")
            .line("User name,Password,Access key ID,Secret access key,Console login link")
            .secret(
                format!("deployer,,{id},{secret},https://console.invalid/"),
                &id,
            )
            .secret(String::new(), &secret),
    );
    // The pair is on one line; the second "planted line" is the same line. Fix up below.
    let last = files.len() - 1;
    files[last].lines.pop();
    files[last].planted[1] = 2;
    let (id, secret) = (g.aws_key_id(), g.aws_secret());
    files.push(
        CorpusFile::new("src/storage/s3.py")
            .line("import boto3")
            .line("")
            .line("def client():")
            .line("    return boto3.client(")
            .line("        \"s3\",")
            .secret(format!("        aws_access_key_id=\"{id}\","), &id)
            .secret(
                format!("        aws_secret_access_key=\"{secret}\","),
                &secret,
            )
            .line("    )"),
    );
    let gcp_key = g.pem_lines(&p(&["PRIVATE", " KEY"]), 600);
    let gcp_escaped = gcp_key.join("\\n") + "\\n";
    let api_key = p(&["AI", "za"]) + &g.b64url(35);
    files.push(
        CorpusFile::new("config/service-account.json")
            .line("{")
            .line("  \"type\": \"service_account\",")
            .line(format!("  \"project_id\": \"demo-{}\",", g.lower_alnum(6)))
            .line(format!("  \"private_key_id\": \"{}\",", g.hex(40)))
            .secret(
                format!("  \"private_key\": \"{gcp_escaped}\","),
                &gcp_key[1],
            )
            .line("  \"client_email\": \"svc@demo.iam.invalid\"")
            .line("}"),
    );
    files.push(
        CorpusFile::new("web/src/firebase.js")
            .line("const firebaseConfig = {")
            .secret(format!("  apiKey: \"{api_key}\","), &api_key)
            .line("  authDomain: \"demo.invalid\",")
            .line("};"),
    );
    let oauth = p(&["GOCS", "PX-"]) + &g.b64url(28);
    files.push(CorpusFile::new("config/client_secret.json").secret(
        format!(
            "{{\"installed\":{{\"client_id\":\"{}.apps.invalid\",\"client_secret\":\"{oauth}\"}}}}",
            g.digits(12)
        ),
        &oauth,
    ));
    let account_key = g.b64(86) + "==";
    files.push(
        CorpusFile::new("src/Api/appsettings.json")
            .line("{")
            .line("  \"ConnectionStrings\": {")
            .secret(
                format!(
                    "    \"Storage\": \"DefaultEndpointsProtocol=https;AccountName=demo{};AccountKey={account_key};EndpointSuffix=core.invalid\"",
                    g.lower_alnum(4)
                ),
                &account_key,
            )
            .line("  }")
            .line("}"),
    );
    let azure_secret = format!(
        "{}{}Q~{}",
        g.alnum(3),
        g.digits(1),
        g.b64url(34).replace('-', ".")
    );
    files.push(
        CorpusFile::new(".env.production")
            .line(format!("AZURE_TENANT_ID={}", g.uuid()))
            .secret(format!("AZURE_CLIENT_SECRET={azure_secret}"), &azure_secret),
    );
    let sig = g.b64(43).replace('/', "%2F").replace('+', "%2B") + "%3D";
    files.push(
        CorpusFile::new("deploy/blob.yaml").line("backup:").secret(
            format!(
                "  url: https://demo.blob.core.invalid/backups?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2030-01-01T00:00:00Z&sig={sig}"
            ),
            &sig,
        ),
    );
    let heroku = g.uuid();
    files.push(CorpusFile::new("Procfile.env").secret(format!("HEROKU_API_KEY={heroku}"), &heroku));
    let digital_ocean = p(&["do", "p_v1_"]) + &g.hex(64);
    files.push(
        CorpusFile::new("infra/terraform.tfvars")
            .secret(format!("do_token = \"{digital_ocean}\""), &digital_ocean)
            .line("region = \"ams3\""),
    );

    // VCS, registries and CI.
    let ghp = p(&["gh", "p_"]) + &g.alnum(36);
    let fine = p(&["github", "_pat_"]) + &g.alnum(22) + "_" + &g.alnum(59);
    let gho = p(&["gh", "o_"]) + &g.alnum(36);
    let ghs = p(&["gh", "s_"]) + &g.alnum(36);
    let ghr = p(&["gh", "r_"]) + &g.alnum(76);
    files.push(
        CorpusFile::new(".env")
            .line("NODE_ENV=development")
            .secret(format!("GITHUB_TOKEN={ghp}"), &ghp)
            .line("PORT=3000"),
    );
    files.push(
        CorpusFile::new("scripts/release.sh")
            .line("#!/bin/sh")
            .line("set -eu")
            .secret(
                format!("curl -H \"Authorization: token {fine}\" https://api.github.invalid/repos"),
                &fine,
            ),
    );
    files.push(CorpusFile::new("data/oauth.json").secret(
        format!("{{\"access_token\": \"{gho}\", \"scope\": \"repo\"}}"),
        &gho,
    ));
    files.push(CorpusFile::new(".git-remote.txt").secret(
        format!("https://x-access-token:{ghs}@github.invalid/acme/app.git"),
        &ghs,
    ));
    files.push(
        CorpusFile::new("src/auth/refresh.ts").secret(format!("const refresh = '{ghr}';"), &ghr),
    );
    let glpat = p(&["gl", "pat-"]) + &g.b64url(20);
    let glrt = p(&["gl", "rt-"]) + &g.b64url(20);
    files.push(
        CorpusFile::new(".gitlab-ci.yml")
            .line("stages: [build]")
            .secret(format!("# temporary: {glpat}"), &glpat)
            .line("build:")
            .line("  script: make"),
    );
    files.push(
        CorpusFile::new("runner/config.toml")
            .line("[[runners]]")
            .line("  name = \"builder\"")
            .secret(format!("  token = \"{glrt}\""), &glrt),
    );
    let atbb = p(&["AT", "BB"]) + &g.alnum(32);
    files.push(
        CorpusFile::new("tools/bitbucket_sync.py")
            .secret(format!("APP_PASSWORD = \"{atbb}\""), &atbb),
    );
    let npm = p(&["np", "m_"]) + &g.alnum(36);
    files.push(
        CorpusFile::new(".npmrc").secret(format!("//npm.pkg.internal/:_authToken={npm}"), &npm),
    );
    let pypi = p(&["py", "pi-AgE"]) + &g.b64url(120);
    files.push(
        CorpusFile::new(".pypirc")
            .line("[upload]")
            .line("username = __token__")
            .secret(format!("password = {pypi}"), &pypi),
    );
    let docker = p(&["dckr", "_pat_"]) + &g.b64url(27);
    files.push(
        CorpusFile::new(".github/workflows/publish.yml")
            .line("jobs:")
            .line("  push:")
            .line("    steps:")
            .secret(
                format!("      - run: echo {docker} | docker login -u acme --password-stdin"),
                &docker,
            ),
    );
    let circle = p(&["CCI", "PAT_"]) + &g.alnum(22) + "_" + &g.hex(40);
    let buildkite = p(&["bk", "ua_"]) + &g.lower_alnum(40);
    let terraform = g.alnum(14) + &p(&[".atlas", "v1."]) + &g.b64url(67);
    let vault = p(&["hv", "s."]) + &g.b64url(92);
    files.push(
        CorpusFile::new("ci/tokens.sh")
            .secret(format!("export CIRCLE_TOKEN={circle}"), &circle)
            .secret(format!("export BUILDKITE_API={buildkite}"), &buildkite)
            .secret(format!("export TFE_TOKEN={terraform}"), &terraform)
            .secret(format!("export VAULT_TOKEN={vault}"), &vault),
    );

    // Chat and webhooks.
    let slack = p(&["xo", "xb-"]) + &g.digits(12) + "-" + &g.digits(13) + "-" + &g.alnum(24);
    let slack_app =
        p(&["xa", "pp-"]) + "1-A" + &g.upper_alnum(10) + "-" + &g.digits(13) + "-" + &g.hex(64);
    let slack_hook = format!(
        "T{}/B{}/{}",
        g.upper_alnum(10),
        g.upper_alnum(10),
        g.alnum(24)
    );
    files.push(
        CorpusFile::new("bots/slack_bot.py")
            .line("from slack_sdk import WebClient")
            .secret(format!("client = WebClient(token=\"{slack}\")"), &slack)
            .secret(format!("APP_TOKEN = \"{slack_app}\""), &slack_app),
    );
    files.push(
        CorpusFile::new("alerting/values.yaml")
            .line("alertmanager:")
            .line("  receivers:")
            .secret(
                format!(
                    "    - slack_api_url: https://{}/services/{slack_hook}",
                    p(&["hooks.", "slack.com"])
                ),
                &slack_hook,
            ),
    );
    let discord = format!("MT{}.{}.{}", g.alnum(24), g.b64url(6), g.b64url(38));
    let discord_hook = format!("{}/{}", g.digits(18), g.b64url(68));
    files.push(
        CorpusFile::new("discord/.env").secret(format!("DISCORD_BOT_TOKEN={discord}"), &discord),
    );
    files.push(CorpusFile::new("discord/notify.js").secret(
        format!("const hook = 'https://discord.com/api/webhooks/{discord_hook}';"),
        &discord_hook,
    ));
    let telegram = format!("{}:AA{}", g.digits(10), g.b64url(33));
    files.push(
        CorpusFile::new("cmd/bot/main.go")
            .line("package main")
            .line("")
            .secret(format!("const botToken = \"{telegram}\""), &telegram),
    );
    let teams = format!(
        "https://acme.webhook.office.com/webhookb2/{}@{}/IncomingWebhook/{}/{}",
        g.uuid(),
        g.uuid(),
        g.hex(32),
        g.uuid()
    );
    let chat = format!(
        "https://chat.googleapis.com/v1/spaces/{}/messages?key={}&token={}",
        g.b64url(11),
        g.b64url(39),
        g.b64url(43)
    );
    files.push(
        CorpusFile::new("notify/hooks.ini")
            .line("[teams]")
            .secret(format!("url = {teams}"), &teams)
            .line("[chat]")
            .secret(format!("url = {chat}"), &chat),
    );
    let sendgrid = format!("SG.{}.{}", g.b64url(22), g.b64url(43));
    let mailgun = p(&["ke", "y-"]) + &g.hex(32);
    files.push(
        CorpusFile::new("mail/settings.rb")
            .secret(format!("SENDGRID = '{sendgrid}'"), &sendgrid)
            .secret(
                format!("Mailgun.configure {{ |c| c.api_key = '{mailgun}' }}"),
                &mailgun,
            ),
    );

    // Payment.
    let stripe = p(&["sk", "_live_"]) + &g.alnum(99);
    let restricted = p(&["rk", "_test_"]) + &g.alnum(24);
    let whsec = p(&["wh", "sec_"]) + &g.alnum(32);
    files.push(
        CorpusFile::new("app/billing/stripe.rb")
            .secret(format!("Stripe.api_key = \"{stripe}\""), &stripe)
            .secret(format!("RESTRICTED = \"{restricted}\""), &restricted)
            .secret(format!("WEBHOOK = \"{whsec}\""), &whsec),
    );
    let square = p(&["sq0", "atp-"]) + &g.b64url(22);
    let square_secret = p(&["sq0", "csp-"]) + &g.b64url(43);
    let square_prod = p(&["EA", "AA"]) + &g.b64url(60);
    files.push(
        CorpusFile::new("payments/square.yml")
            .secret(format!("access_token: {square}"), &square)
            .secret(format!("oauth_secret: {square_secret}"), &square_secret)
            .secret(format!("production: {square_prod}"), &square_prod),
    );
    let braintree = format!(
        "{}${}${}",
        p(&["access_token", "$production"]),
        g.lower_alnum(16),
        g.hex(32)
    );
    files.push(CorpusFile::new("payments/paypal.php").secret(
        format!("$gateway = new Braintree\\Gateway(['accessToken' => '{braintree}']);"),
        &braintree,
    ));
    let shopify = p(&["shp", "at_"]) + &g.hex(32);
    files.push(
        CorpusFile::new("shop/.env.local").secret(format!("SHOPIFY_ADMIN={shopify}"), &shopify),
    );

    // Model providers, in a notebook and in code.
    let openai = p(&["sk", "-proj-"]) + &g.b64url(156);
    let hf = p(&["h", "f_"]) + &g.letters(34);
    files.push(
        CorpusFile::new("notebooks/explore.ipynb")
            .line("{\"cells\": [{\"cell_type\": \"code\", \"source\": [")
            .line("  \"import openai\\n\",")
            .secret(
                format!("  \"openai.api_key = \\\"{openai}\\\"\\n\","),
                &openai,
            )
            .secret(format!("  \"login(token='{hf}')\\n\""), &hf)
            .line("]}], \"nbformat\": 4}"),
    );
    let legacy = format!("sk-{}{}{}", g.alnum(20), p(&["T3Blbk", "FJ"]), g.alnum(20));
    let anthropic = p(&["sk", "-ant-api03-"]) + &g.b64url(93) + "AA";
    let groq = p(&["gs", "k_"]) + &g.alnum(52);
    let replicate = p(&["r", "8_"]) + &g.alnum(37);
    let perplexity = p(&["pp", "lx-"]) + &g.alnum(48);
    let xai = p(&["xa", "i-"]) + &g.alnum(80);
    files.push(
        CorpusFile::new("src/llm/providers.ts")
            .secret(format!("const OPENAI = \"{legacy}\";"), &legacy)
            .secret(format!("const ANTHROPIC = \"{anthropic}\";"), &anthropic)
            .secret(format!("const GROQ = \"{groq}\";"), &groq)
            .secret(format!("const REPLICATE = \"{replicate}\";"), &replicate)
            .secret(format!("const PPLX = \"{perplexity}\";"), &perplexity)
            .secret(format!("const XAI = \"{xai}\";"), &xai),
    );

    // Other SaaS.
    let linear = p(&["lin", "_api_"]) + &g.alnum(40);
    let postman = format!("{}{}-{}", p(&["PM", "AK-"]), g.hex(24), g.hex(34));
    let newrelic = p(&["NR", "AK-"]) + &g.upper_alnum(27);
    let databricks = p(&["da", "pi"]) + &g.hex(32);
    let supabase = p(&["sb", "p_"]) + &g.hex(40);
    let sentry = p(&["sntr", "ys_"]) + &g.b64(80);
    let doppler = p(&["dp.", "pt."]) + &g.alnum(43);
    let grafana = format!("{}{}_{}", p(&["gl", "sa_"]), g.alnum(32), g.hex(8));
    files.push(
        CorpusFile::new("config/integrations.yaml")
            .secret(format!("linear: {linear}"), &linear)
            .secret(format!("postman: {postman}"), &postman)
            .secret(format!("newrelic: {newrelic}"), &newrelic)
            .secret(format!("databricks: {databricks}"), &databricks)
            .secret(format!("supabase: {supabase}"), &supabase)
            .secret(format!("sentry: {sentry}"), &sentry)
            .secret(format!("doppler: {doppler}"), &doppler)
            .secret(format!("grafana: {grafana}"), &grafana),
    );

    // Private keys: files, fixtures, strings, comments, YAML block scalars.
    let rsa = p(&["RSA PRIVATE", " KEY"]);
    files.push(CorpusFile::new("certs/server.key").secret_block(g.pem_lines(&rsa, 1190)));
    files.push(CorpusFile::new("tests/fixtures/id_ed25519").secret_block(g.openssh_lines()));
    let ec = g.pem_lines(&p(&["EC PRIVATE", " KEY"]), 121);
    let mut python = vec![format!("SIGNING_KEY = \"\"\"{}", ec[0])];
    python.extend(ec[1..].iter().cloned());
    python.push("\"\"\"".to_owned());
    files.push(
        CorpusFile::new("src/signing.py")
            .line("import jwt")
            .secret_block(python),
    );
    let commented: Vec<String> = g
        .pem_lines(&p(&["PRIVATE", " KEY"]), 300)
        .into_iter()
        .map(|line| format!("# {line}"))
        .collect();
    files.push(
        CorpusFile::new("scripts/bootstrap.sh")
            .line("#!/bin/sh")
            .line("# old key, keep for now:")
            .secret_block(commented),
    );
    let yaml: Vec<String> = g
        .pem_lines(&p(&["PRIVATE", " KEY"]), 300)
        .into_iter()
        .map(|line| format!("    {line}"))
        .collect();
    files.push(
        CorpusFile::new("k8s/tls-secret.yaml")
            .line("apiVersion: v1")
            .line("kind: Secret")
            .line("stringData:")
            .line("  tls.key: |")
            .secret_block(yaml),
    );
    files.push(
        CorpusFile::new("keys/release.asc")
            .secret_block(g.pem_lines(&p(&["PGP PRIVATE", " KEY BLOCK"]), 900)),
    );
    let mut encrypted = g.pem_lines(&rsa, 1190);
    encrypted.insert(1, "Proc-Type: 4,ENCRYPTED".to_owned());
    encrypted.insert(
        2,
        format!("DEK-Info: AES-128-CBC,{}", g.hex(32).to_uppercase()),
    );
    encrypted.insert(3, String::new());
    files.push(CorpusFile::new("legacy/old.pem").secret_block(encrypted));
    let putty_lines: Vec<String> =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, g.bytes(300))
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
    let mut putty = CorpusFile::new("keys/deploy.ppk")
        .line("PuTTY-User-Key-File-3: ssh-rsa")
        .line("Encryption: none")
        .line("Comment: deploy")
        .line("Public-Lines: 2")
        .line(g.b64(64))
        .line(g.b64(40))
        .line(format!("Private-Lines: {}", putty_lines.len()));
    putty.planted.push(putty.lines.len() + 1);
    putty.secrets.push(putty_lines[0].clone());
    putty.lines.extend(putty_lines);
    files.push(putty);
    let age = p(&["AGE-SECRET", "-KEY-1"]) + &g.chars_of("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58);
    files.push(
        CorpusFile::new("keys/age.txt")
            .line("# created: 2024-01-01")
            .secret(age.clone(), &age),
    );

    // JWTs.
    let jwt = g.jwt();
    files.push(
        CorpusFile::new("web/test/session.test.js")
            .line("it('loads the profile', async () => {")
            .secret(format!("  const session = '{jwt}';"), &jwt)
            .line("});"),
    );
    let jwt = g.jwt();
    files.push(
        CorpusFile::new("docs/api.md")
            .line("Call the API:")
            .line("```")
            .secret(
                format!("curl -H 'Authorization: Bearer {jwt}' https://api.acme.invalid/v1/me"),
                &jwt,
            )
            .line("```"),
    );

    // Connection strings and URLs with passwords.
    let pg = g.url_password(16);
    let my = g.url_password(14);
    let mongo = g.url_password(20);
    let redis = g.alnum(32);
    let amqp = g.url_password(18);
    let pip = g.alnum(24);
    files.push(
        CorpusFile::new("services/api/.env")
            .secret(
                format!("DATABASE_URL=postgres://app:{pg}@db.internal:5432/app"),
                &pg,
            )
            .secret(
                format!("REDIS_URL=redis://default:{redis}@cache.internal:6379/0"),
                &redis,
            ),
    );
    files.push(CorpusFile::new("app/config.py").secret(
        format!("SQLALCHEMY_DATABASE_URI = 'mysql+pymysql://shop:{my}@10.0.3.7/shop'"),
        &my,
    ));
    files.push(CorpusFile::new("config/db.json").secret(
        format!(
            "{{\"uri\": \"mongodb+srv://analytics:{mongo}@cluster0.abcde.mongo.invalid/prod\"}}"
        ),
        &mongo,
    ));
    files.push(
        CorpusFile::new("docker-compose.yml")
            .line("services:")
            .line("  worker:")
            .line("    environment:")
            .secret(
                format!("      BROKER_URL: amqp://worker:{amqp}@rabbit:5672/"),
                &amqp,
            ),
    );
    files.push(CorpusFile::new("pip.conf").line("[global]").secret(
        format!("index-url = https://ci:{pip}@pkgs.internal/simple"),
        &pip,
    ));
    let basic_raw = format!("svc:{}", g.password(16));
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        basic_raw.as_bytes(),
    );
    let bearer = g.b64url(48);
    files.push(
        CorpusFile::new("tools/client.py")
            .secret(
                format!("HEADERS = {{\"Authorization\": \"Basic {basic}\"}}"),
                &basic,
            )
            .secret(
                format!("requests.get(url, headers={{\"Authorization\": \"Bearer {bearer}\"}})"),
                &bearer,
            ),
    );

    // Generic assignments in many languages and formats.
    let mut generic = |path: &str, make: &dyn Fn(&str) -> String, value: String| {
        files.push(CorpusFile::new(path).line("").secret(make(&value), &value));
    };
    generic(
        "app/settings.py",
        &|v| format!("SECRET_KEY = \"{v}\""),
        g.password(50),
    );
    generic(
        "backend/.env",
        &|v| format!("DB_PASSWORD={v}"),
        g.password(18),
    );
    generic(
        "deploy/values.yaml",
        &|v| format!("  client_secret: {v}"),
        g.alnum(40),
    );
    generic(
        "web/config.json",
        &|v| format!("  \"apiKey\": \"{v}\","),
        g.alnum(32),
    );
    generic(
        "src/main/java/com/acme/Client.java",
        &|v| format!("    private static final String API_TOKEN = \"{v}\";"),
        g.alnum(40),
    );
    generic(
        "internal/db/db.go",
        &|v| format!("\tPassword: \"{v}\","),
        g.password(20),
    );
    generic(
        "conf/server.xml",
        &|v| format!("<Resource name=\"jdbc/app\" password=\"{v}\"/>"),
        g.password(16),
    );
    generic(
        "config/app.toml",
        &|v| format!("secret_key = \"{v}\""),
        g.b64(44),
    );
    generic(
        "infra/rds.tf",
        &|v| format!("  master_password = \"{v}\""),
        g.password(24),
    );
    generic(
        "ios/Config.swift",
        &|v| format!("let apiKey = \"{v}\""),
        g.alnum(39),
    );
    generic(
        "src/config.rs",
        &|v| format!("const SIGNING_KEY: &str = \"{v}\";"),
        g.hex(64),
    );
    generic("src/worker.py", &|v| format!("# token: {v}"), g.alnum(40));
    generic(
        "tests/fixtures/config.json",
        &|v| format!("{{\"password\": \"{v}\"}}"),
        g.password(14),
    );
    generic("Dockerfile", &|v| format!("ENV API_KEY={v}"), g.alnum(32));
    generic(
        "k8s/secret.yaml",
        &|v| format!("  password: {v}"),
        g.password(22),
    );
    generic(
        "scripts/env.sh",
        &|v| format!("export SECRET_TOKEN='{v}'"),
        g.alnum(30),
    );
    generic(
        "config/database.php",
        &|v| format!("    'password' => '{v}',"),
        g.password(16),
    );
    generic(
        "src/Data/Db.cs",
        &|v| format!("var cs = \"Server=db;Database=app;User Id=sa;Password={v};\";"),
        g.password(16),
    );
    generic(
        "notebooks/train.ipynb",
        &|v| format!("  \"api_key = \\\"{v}\\\"\\n\","),
        g.alnum(40),
    );
    generic(
        "src/lib/client.ts",
        &|v| format!("const clientSecret: string = \"{v}\";"),
        g.alnum(48),
    );

    files
}

/// Clean files, full of things that look like secrets and are not.
pub fn clean(g: &mut Gen) -> Vec<CorpusFile> {
    let dashes = "-".repeat(5);
    let aws_doc_id = p(&["AKIA", "IOSFODNN7", "EXAMPLE"]);
    let aws_doc_secret = p(&["wJalrXUtnFEMI", "/K7MDENG", "/bPxRfiCY", "EXAMPLEKEY"]);
    let integrity = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, g.bytes(64));
    let mut public_key = g.pem_lines("PUBLIC KEY", 294);
    public_key.insert(0, "const PUBLIC_KEY = `".to_owned());
    public_key.push("`;".to_owned());
    let certificate = g.pem_lines("CERTIFICATE", 900);
    let pgp_public = g.pem_lines("PGP PUBLIC KEY BLOCK", 900);
    vec![
        CorpusFile::new("package-lock.json")
            .line("{\"packages\": {\"node_modules/left-pad\": {")
            .line("  \"version\": \"1.3.0\",")
            .line("  \"resolved\": \"https://registry.invalid/left-pad/-/left-pad-1.3.0.tgz\",")
            .line(format!("  \"integrity\": \"sha512-{integrity}\""))
            .line("}}}"),
        CorpusFile::new("Cargo.lock")
            .line("[[package]]")
            .line("name = \"serde\"")
            .line("version = \"1.0.200\"")
            .line(format!("checksum = \"{}\"", g.hex(64))),
        CorpusFile::new("go.sum")
            .line(format!(
                "github.invalid/pkg/errors v0.9.1 h1:{}=",
                g.b64(43)
            ))
            .line(format!(
                "github.invalid/pkg/errors v0.9.1/go.mod h1:{}=",
                g.b64(43)
            )),
        CorpusFile::new("yarn.lock")
            .line("lodash@^4.17.21:")
            .line("  version \"4.17.21\"")
            .line(format!("  integrity sha512-{integrity}")),
        CorpusFile::new("Dockerfile.base")
            .line(format!("FROM debian@sha256:{}", g.hex(64)))
            .line("RUN apt-get update"),
        CorpusFile::new("CHANGELOG.md")
            .line(format!("- fix the token refresh ({})", g.hex(40)))
            .line(format!("- commit = \"{}\"", g.hex(40)))
            .line(format!("- sha256 = \"{}\"", g.hex(64))),
        CorpusFile::new("src/ids.py")
            .line(format!("request_id = \"{}\"", g.uuid()))
            .line(format!("token_id = \"{}\"", g.uuid()))
            .line(format!("TENANT = \"{}\"", g.uuid()))
            .line(format!("password_hash = \"{}\"", g.hex(64)))
            .line(format!("secret_sha256 = \"{}\"", g.hex(64)))
            .line(format!("api_key_id = \"{}\"", g.alnum(20))),
        CorpusFile::new(".env.example")
            .line("API_KEY=<your-api-key>")
            .line("DB_PASSWORD=${DB_PASSWORD}")
            .line("SECRET_KEY=changeme")
            .line("STRIPE_KEY=sk_live_xxxxxxxxxxxxxxxxxxxxxxxx")
            .line(format!(
                "GITHUB_TOKEN={}",
                p(&["gh", "p_"]) + &"x".repeat(36)
            ))
            .line("SLACK_TOKEN=your_slack_token_here")
            .line("PASSWORD=********"),
        CorpusFile::new("src/settings.py")
            .line("import os")
            .line("password = os.environ[\"DB_PASSWORD\"]")
            .line("api_key = settings.OPENAI_API_KEY")
            .line("token = tokenizer.encode(text)")
            .line("max_tokens = 4096")
            .line("password_min_length = 12")
            .line("api_key_header = \"X-API-Key\"")
            .line("TOKEN_URL = \"https://oauth2.invalid/token\"")
            .line("secret_name = \"prod/db/password\"")
            .line("private_key_path = \"/etc/keys/server.key\"")
            .line("session_token = None")
            .line("csrf_token = request.cookies.get(\"csrftoken\")")
            .line("password = getpass.getpass(\"Password: \")")
            .line("aws_access_key_id = os.environ[\"AWS_ACCESS_KEY_ID\"]")
            .line("if not password:")
            .line("    raise ValueError(\"password required\")"),
        CorpusFile::new("web/src/auth.ts")
            .line("const token = await getToken();")
            .line("const accessToken = response.data.access_token;")
            .line("headers: { Authorization: `Bearer ${token}` },")
            .line("const tokenType = \"bearer\";")
            .line("export const PASSWORD_FIELD = \"password\";"),
        CorpusFile::new("deploy/chart/values.yaml")
            .line("env:")
            .line("  - name: DB_PASSWORD")
            .line("    valueFrom:")
            .line("      secretKeyRef:")
            .line("        name: db")
            .line("        key: password")
            .line("  token: {{ .Values.token }}")
            .line("  password: !vault |")
            .line("  api_key: ENC[AES256_GCM,data:abc,type:str]"),
        CorpusFile::new(".github/workflows/ci.yml")
            .line("env:")
            .line("  AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}")
            .line("  GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}"),
        CorpusFile::new("web/src/keys.ts")
            .line("// the server's public key")
            .lines(public_key),
        CorpusFile::new("certs/ca.crt").lines(certificate),
        CorpusFile::new("keys/release-public.asc").lines(pgp_public),
        CorpusFile::new(".ssh/authorized_keys").line(format!(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} deploy@ci",
            g.b64(43)
        )),
        CorpusFile::new("web/stripe.js").line(format!(
            "const stripe = Stripe('{}{}');",
            p(&["pk", "_live_"]),
            g.alnum(99)
        )),
        CorpusFile::new("docs/aws.md")
            .line("Configure the CLI with the example keys from AWS's documentation:")
            .line(format!("aws_access_key_id = {aws_doc_id}"))
            .line(format!("aws_secret_access_key = {aws_doc_secret}")),
        CorpusFile::new("docs/database.md")
            .line("postgres://user:password@localhost:5432/db")
            .line("mysql://root:root@127.0.0.1/test")
            .line("https://user:pass@example.com/path")
            .line("redis://:${REDIS_PASSWORD}@redis:6379")
            .line("f\"postgresql://{user}:{password}@{host}/{db}\""),
        CorpusFile::new("docs/keys.md")
            .line("Paste your key:")
            .line(format!("{dashes}BEGIN RSA PRIVATE KEY{dashes}"))
            .line("...")
            .line(format!("{dashes}END RSA PRIVATE KEY{dashes}"))
            .line("Store your private key in a safe place."),
        CorpusFile::new("src/crypto/vectors.rs")
            .line(format!("const EXPECTED_DIGEST: &str = \"{}\";", g.hex(64)))
            .line(format!(
                "const NONCE: [u8; 12] = [0x{}, 0x{}];",
                g.hex(2),
                g.hex(2)
            ))
            .line("let password = String::new();")
            .line(format!(
                "let image = \"data:image/png;base64,{}\";",
                g.b64(120)
            )),
        CorpusFile::new("src/tokenizer.py")
            .line("class Tokenizer:")
            .line("    def tokens(self, text):")
            .line("        return [t for t in text.split()]")
            .line("    token_count = 0")
            .line("    tokens = [\"secret\", \"password\", \"token\"]"),
        CorpusFile::new("README.md")
            .line("Set `OPENAI_API_KEY` and `ANTHROPIC_API_KEY` before running.")
            .line("The token expires after an hour; the secret is rotated daily.")
            .line(format!("Build id {} in Asia/Tokyo.", g.uuid())),
        // Code shapes that once fooled the generic rule in third-party sources.
        CorpusFile::new("src/parse/tokens.rs")
            .line("    pub group_token: token::Group,")
            .line("            Token::StructEnd,")
            .line("    let paren_token = parenthesized!(content in input);")
            .line("    secret: &OkmBlock,")
            .line("    let takes_ownership = move |token: CancellationToken| {")
            .line("    if( nToken>FTS5_MAX_TOKEN_SIZE ) nToken = FTS5_MAX_TOKEN_SIZE;")
            .line("    x.u.zToken = sqlite3DbSpanDup(db, zStart, zEnd);")
            .line("    SectionKind::RsaPrivateKey => pkcs1_key = Some(der),")
            .line("    const DEFAULT_SECRET: Aligned64<[u8; DEFAULT_SECRET_SIZE]> = Aligned64(DEFAULT_SECRET);")
            .line("    ServerApplicationTrafficSecret => \"SERVER_TRAFFIC_SECRET_0\",")
            .line("    const TOKEN_PAYLOAD: &str = \"eyJvaWQiOiIxMjM0NTY3OC05YWJjIn0\";")
            .line("    - sync: make `CancellationToken::run_until_cancelled` biased")
            .line("    let url = format!(\"postgres://{user}:{password}@{host}/db\");"),
        CorpusFile::new("docs/badges.md")
            .line(format!("[![cov](https://cov.invalid/gh/acme/app/graph/badge.svg?token={}&style=flat)]", g.alnum(10)))
            .line("http://wiki.invalid/wiki/The_Secret_Saturdays:_Beasts_of_the_5th_Sun")
            .line("redis://sentinel_user:sentinel_pass@127.0.0.1")
            .line("https://Aladdin:opensesame@localhost:8887"),
        CorpusFile::new("src/api/keys.go")
            .line("var apiKey = os.Getenv(\"API_KEY\")")
            .line("password := r.FormValue(\"password\")")
            .line("token, err := auth.NewToken(ctx)")
            .line("secret := []byte(os.Getenv(\"JWT_SECRET\"))"),
    ]
}

/// Recall and precision of the scanner over the corpus, printed.
#[test]
fn recall_and_precision_meet_the_targets() {
    let mut g = Gen::new(0x5EC2E7);
    let planted = planted(&mut g);
    let clean = clean(&mut g);
    let dir = tempfile::tempdir().unwrap();
    for file in planted.iter().chain(&clean) {
        let path = dir.path().join(&file.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, file.text()).unwrap();
    }
    let report = Scanner::new()
        .unwrap()
        .scan_path(dir.path(), ScanLimits::default())
        .unwrap();

    let expected: BTreeSet<(String, usize)> = planted
        .iter()
        .flat_map(|file| file.planted.iter().map(|&line| (file.path.clone(), line)))
        .collect();
    let found: Vec<(String, usize)> = report
        .findings
        .iter()
        .map(|f| (f.file.clone(), f.line))
        .collect();
    let found_set: BTreeSet<_> = found.iter().cloned().collect();
    let missed: Vec<_> = expected.difference(&found_set).collect();
    let false_positives: Vec<_> = report
        .findings
        .iter()
        .filter(|f| !expected.contains(&(f.file.clone(), f.line)))
        .map(|f| f.to_string())
        .collect();
    let true_positives = expected.len() - missed.len();
    let recall = true_positives as f64 / expected.len() as f64;
    let precision = (found.len() - false_positives.len()) as f64 / found.len().max(1) as f64;
    println!(
        "corpus: {} planted secrets in {} files, {} clean files; {} findings",
        expected.len(),
        planted.len(),
        clean.len(),
        found.len()
    );
    println!(
        "recall    {:.1}% ({true_positives}/{})",
        recall * 100.0,
        expected.len()
    );
    println!(
        "precision {:.1}% ({}/{})",
        precision * 100.0,
        found.len() - false_positives.len(),
        found.len()
    );
    println!("missed: {missed:#?}");
    println!("false positives: {false_positives:#?}");
    assert!(
        recall >= 0.95,
        "recall {recall:.3} below 95%: missed {missed:#?}"
    );
    assert!(
        precision >= 0.90,
        "precision {precision:.3} below 90%: {false_positives:#?}"
    );

    // No output form holds a planted secret.
    let outputs = [
        report.to_json().to_string(),
        report.to_sarif().to_string(),
        report.to_text(),
        format!("{report:?}"),
    ];
    for secret in planted.iter().flat_map(|file| &file.secrets) {
        for output in &outputs {
            assert!(
                !output.contains(secret.as_str()),
                "a secret leaked into the output"
            );
        }
    }
}

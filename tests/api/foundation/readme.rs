//! README.md shows every RPC (issue 15): its "Every RPC with grpcurl" section, with the
//! `docs/*.md` files, has a grpcurl example for each method that reflection lists
//! (health's included), and each example's JSON body uses only fields and enum values
//! its request message has.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FileDescriptorProto,
    field_descriptor_proto::{Label, Type},
};
use serde_json::Value;
use tonic::transport::Channel;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::helpers::{Backend, spawn_app};

const README: &str = include_str!("../../../README.md");
const SECTION: &str = "## Every RPC with grpcurl";

/// What reflection says the server serves: each method (`package.Service/Method`) with
/// its input type, and the messages and enums of the files that declare them.
struct Contract {
    methods: BTreeMap<String, String>,
    messages: BTreeMap<String, DescriptorProto>,
    enums: BTreeMap<String, EnumDescriptorProto>,
}

/// One reflection session: sends `requests`, returns the answers in order.
async fn reflect(channel: Channel, requests: Vec<MessageRequest>) -> Vec<MessageResponse> {
    let requests: Vec<_> = requests
        .into_iter()
        .map(|message| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(message),
        })
        .collect();
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection without a key")
        .into_inner();
    let mut answers = Vec::new();
    while let Some(answer) = stream.message().await.expect("a reflection answer") {
        match answer.message_response.expect("an answer") {
            MessageResponse::ErrorResponse(error) => panic!("reflection error: {error:?}"),
            other => answers.push(other),
        }
    }
    answers
}

fn files_of(answers: Vec<MessageResponse>) -> Vec<FileDescriptorProto> {
    answers
        .into_iter()
        .flat_map(|answer| match answer {
            MessageResponse::FileDescriptorResponse(files) => files.file_descriptor_proto,
            other => panic!("expected files, got {other:?}"),
        })
        .map(|bytes| FileDescriptorProto::decode(bytes.as_slice()).expect("a file"))
        .collect()
}

/// Lists the services (but reflection's own), then fetches the files declaring them and
/// their imports, as grpcurl does.
async fn contract(channel: Channel) -> Contract {
    let listed = reflect(
        channel.clone(),
        vec![MessageRequest::ListServices(String::new())],
    )
    .await;
    let services: Vec<String> = match listed.as_slice() {
        [MessageResponse::ListServicesResponse(list)] => list
            .service
            .iter()
            .map(|s| s.name.clone())
            .filter(|name| !name.starts_with("grpc.reflection."))
            .collect(),
        other => panic!("expected one service list, got {other:?}"),
    };
    let requests = services
        .iter()
        .map(|s| MessageRequest::FileContainingSymbol(s.clone()))
        .collect();
    let mut files: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
    let mut found = files_of(reflect(channel.clone(), requests).await);
    while !found.is_empty() {
        for file in found.drain(..) {
            files.insert(file.name().to_string(), file);
        }
        // The well-known types are free-form in JSON here (Struct, FieldMask, Timestamp).
        let missing: BTreeSet<String> = files
            .values()
            .flat_map(|f| f.dependency.iter().cloned())
            .filter(|d| !d.starts_with("google/protobuf/") && !files.contains_key(d))
            .collect();
        if !missing.is_empty() {
            let requests = missing.into_iter().map(MessageRequest::FileByFilename);
            found = files_of(reflect(channel.clone(), requests.collect()).await);
        }
    }

    let mut contract = Contract {
        methods: BTreeMap::new(),
        messages: BTreeMap::new(),
        enums: BTreeMap::new(),
    };
    for file in files.values() {
        let scope = format!(".{}", file.package());
        for service in &file.service {
            let full = format!("{}.{}", file.package(), service.name());
            if !services.contains(&full) {
                continue;
            }
            for method in &service.method {
                let name = format!("{full}/{}", method.name());
                contract
                    .methods
                    .insert(name, method.input_type().to_string());
            }
        }
        for e in &file.enum_type {
            contract
                .enums
                .insert(format!("{scope}.{}", e.name()), e.clone());
        }
        for m in &file.message_type {
            add_message(&mut contract, &scope, m);
        }
    }
    contract
}

fn add_message(contract: &mut Contract, scope: &str, message: &DescriptorProto) {
    let full = format!("{scope}.{}", message.name());
    for e in &message.enum_type {
        contract
            .enums
            .insert(format!("{full}.{}", e.name()), e.clone());
    }
    for nested in &message.nested_type {
        add_message(contract, &full, nested);
    }
    contract.messages.insert(full, message.clone());
}

/// The words of each command of a shell script, as the shell splits them: quotes
/// removed and joined, `\` + newline continued, `;` and newlines ending a command,
/// `#` comments dropped. Enough for the README's examples (no here-documents).
fn commands(script: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => word.push(n),
                            Some('\n') | None => {}
                            Some(n) => {
                                word.push('\\');
                                word.push(n);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(n) => {
                    in_word = true;
                    word.push(n);
                }
            },
            '#' if !in_word => while chars.next_if(|&n| n != '\n').is_some() {},
            c if c.is_whitespace() || c == ';' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                if (c == '\n' || c == ';') && !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if !words.is_empty() {
        commands.push(words);
    }
    commands
}

/// `package.Service/Method`, as grpcurl takes it.
fn is_method(word: &str) -> bool {
    let Some((service, method)) = word.split_once('/') else {
        return false;
    };
    let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    service.contains('.') && service.split('.').all(ident) && ident(method)
}

/// Every `docs/*.md` file, whole: their grpcurl examples count like README's.
fn docs() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.retain(|path| path.extension().is_some_and(|ext| ext == "md"));
    paths.sort();
    paths
        .iter()
        .map(|path| std::fs::read_to_string(path).expect("a readable docs file"))
        .collect()
}

/// The grpcurl examples of README's section and of `docs/*.md`: for each method named,
/// the `-d` bodies.
fn examples(readme: &str) -> Result<BTreeMap<String, Vec<Option<String>>>, String> {
    let start = readme
        .find(SECTION)
        .ok_or_else(|| format!("README.md has no section {SECTION:?}"))?;
    let rest = &readme[start + SECTION.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut examples: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for text in std::iter::once(section.to_string()).chain(docs()) {
        examples_in(&text, &mut examples);
    }
    Ok(examples)
}

/// Adds the grpcurl examples of the `sh` blocks of `text` to `examples`.
fn examples_in(text: &str, examples: &mut BTreeMap<String, Vec<Option<String>>>) {
    let mut blocks = text.split("```");
    blocks.next(); // the text before the first block
    while let (Some(block), _) = (blocks.next(), blocks.next()) {
        let Some(script) = block.strip_prefix("sh\n") else {
            continue;
        };
        for words in commands(script) {
            if !words
                .iter()
                .any(|w| w == "grpcurl" || w.ends_with("$(grpcurl"))
            {
                continue;
            }
            let method = words
                .iter()
                .map(|w| w.trim_end_matches(')'))
                .find(|w| is_method(w));
            let body = words
                .iter()
                .position(|w| w == "-d")
                .and_then(|i| words.get(i + 1).cloned());
            if let Some(method) = method {
                examples.entry(method.to_string()).or_default().push(body);
            }
        }
    }
}

/// Lists what is wrong with the value of a message of type `type_name` at `path`.
fn check_message(
    contract: &Contract,
    type_name: &str,
    value: &Value,
    path: &str,
    problems: &mut Vec<String>,
) {
    let Some(message) = contract.messages.get(type_name) else {
        problems.push(format!("{path}: unknown message type {type_name}"));
        return;
    };
    let Value::Object(object) = value else {
        problems.push(format!("{path}: {type_name} must be a JSON object"));
        return;
    };
    for (key, value) in object {
        let key = key.as_str();
        let field = message
            .field
            .iter()
            .find(|f| f.name() == key || f.json_name() == key || lower_camel(f.name()) == key);
        let Some(field) = field else {
            problems.push(format!("{path}.{key}: {type_name} has no such field"));
            continue;
        };
        let path = format!("{path}.{key}");
        if value.is_null() {
            continue;
        }
        let map_entry = field.r#type() == Type::Message
            && contract
                .messages
                .get(field.type_name())
                .is_some_and(|m| m.options.as_ref().is_some_and(|o| o.map_entry()));
        if field.label() == Label::Repeated && !map_entry {
            let Value::Array(items) = value else {
                problems.push(format!("{path}: a repeated field takes a JSON array"));
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                check_single(
                    contract,
                    field.r#type(),
                    field.type_name(),
                    item,
                    &format!("{path}[{i}]"),
                    problems,
                );
            }
        } else if !map_entry {
            check_single(
                contract,
                field.r#type(),
                field.type_name(),
                value,
                &path,
                problems,
            );
        }
    }
}

fn check_single(
    contract: &Contract,
    kind: Type,
    type_name: &str,
    value: &Value,
    path: &str,
    problems: &mut Vec<String>,
) {
    match kind {
        Type::Message if type_name.starts_with(".google.protobuf.") => {}
        Type::Message => check_message(contract, type_name, value, path, problems),
        Type::Enum => match (value, contract.enums.get(type_name)) {
            (Value::Number(_), _) => {}
            (Value::String(name), Some(e)) if e.value.iter().any(|v| v.name() == name.as_str()) => {
            }
            _ => problems.push(format!("{path}: {value} is not a value of {type_name}")),
        },
        _ => {}
    }
}

fn lower_camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Every way `readme` falls short of the served contract, one line each.
fn problems(readme: &str, contract: &Contract) -> Vec<String> {
    let examples = match examples(readme) {
        Ok(examples) => examples,
        Err(problem) => return vec![problem],
    };
    let mut problems = Vec::new();
    for method in contract.methods.keys() {
        if !examples.contains_key(method) {
            problems.push(format!("{method}: no grpcurl example under {SECTION:?}"));
        }
    }
    for (method, bodies) in &examples {
        let Some(input) = contract.methods.get(method) else {
            problems.push(format!("{method}: shown in README.md, not served"));
            continue;
        };
        for body in bodies.iter().flatten() {
            match serde_json::from_str::<Value>(body) {
                Ok(value) => check_message(contract, input, &value, method, &mut problems),
                Err(error) => {
                    problems.push(format!("{method}: body is not JSON ({error}): {body}"))
                }
            }
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_shows_a_valid_grpcurl_example_of_every_served_rpc() {
    let app = spawn_app(Backend::Sqlite).await;
    let contract = contract(app.channel.clone()).await;
    for expected in [
        "tenancy.v1.CustomerService/CreateCustomer",
        "tenancy.v1.AccountService/GetEffectiveLimits",
        "tenancy.v1.UserService/CheckAccess",
        "tenancy.v1.EventService/StreamEvents",
        "grpc.health.v1.Health/Check",
        "grpc.health.v1.Health/Watch",
    ] {
        assert!(
            contract.methods.contains_key(expected),
            "reflection lists {expected}: {:?}",
            contract.methods.keys()
        );
    }

    let found = problems(README, &contract);
    assert!(
        found.is_empty(),
        "README.md, against the {} RPCs served:\n{}",
        contract.methods.len(),
        found.join("\n")
    );

    // The check itself: an example taken out, or a field misspelt, is reported.
    let without_check_access: String = README
        .lines()
        .filter(|line| !line.contains("tenancy.v1.UserService/CheckAccess"))
        .map(|line| format!("{line}\n"))
        .collect();
    let found = problems(&without_check_access, &contract);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("tenancy.v1.UserService/CheckAccess:")),
        "{found:?}"
    );
    let misspelt = README.replacen("\"current_password\"", "\"currentpassword\"", 1);
    let found = problems(&misspelt, &contract);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("tenancy.v1.UserService/ChangePassword.currentpassword:")),
        "{found:?}"
    );
}

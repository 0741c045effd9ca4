//! Seeds a running server for `bench/roles.sh` and writes the gRPC-framed request bodies
//! h2load sends: CheckAccess through a role, BatchCheckAccess of 20 checks,
//! ListAccessibleResources (first page) for a user with `--memberships` customer
//! memberships, and GetUser.
//!
//! ```text
//! cargo run --release --example roles_bodies -- --target http://127.0.0.1:50094 \
//!     --key KEY --out DIR [--memberships 1000]
//! ```

use std::path::PathBuf;

use clap::Parser;
use tenancy_client::pb::{
    self, access_check, check_access_request, customer_service_client::CustomerServiceClient,
    user_service_client::UserServiceClient,
};
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:50094")]
    target: String,
    #[arg(long)]
    key: String,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1000)]
    memberships: usize,
}

#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, Bearer>;

fn frame(message: &impl prost::Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut out = vec![0];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

async fn user(users: &mut UserServiceClient<Authed>, email: &str) -> Result<String, Status> {
    Ok(users
        .create_user(pb::CreateUserRequest {
            user: Some(pb::User {
                email: email.into(),
                first_name: "Bench".into(),
                last_name: "User".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner()
        .user
        .expect("a user")
        .uuid)
}

async fn customer(
    customers: &mut CustomerServiceClient<Authed>,
    email: &str,
    owner: &str,
) -> Result<String, Status> {
    Ok(customers
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(pb::Customer {
                email: email.into(),
                first_name: "Bench".into(),
                last_name: "Owner".into(),
                customer_type: pb::CustomerType::Personal as i32,
                ..Default::default()
            }),
            owner_user_id: owner.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .customer
        .expect("a customer")
        .uuid)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let channel = Endpoint::from_shared(args.target.clone())?
        .connect()
        .await?;
    let bearer = Bearer(format!("Bearer {}", args.key).parse()?);
    let mut users = UserServiceClient::with_interceptor(channel.clone(), bearer.clone());
    let mut customers = CustomerServiceClient::with_interceptor(channel, bearer);
    let run = uuid::Uuid::now_v7().simple().to_string();

    // A customer with a role and a member who holds only the role.
    let owner = user(&mut users, &format!("owner-{run}@bench.example")).await?;
    let main = customer(&mut customers, &format!("main-{run}@bench.example"), &owner).await?;
    customers
        .create_customer_role(pb::CreateCustomerRoleRequest {
            customer_id: main.clone(),
            role: Some(pb::Role {
                name: "operator".into(),
                permissions: vec!["rooms.read".into(), "rooms.write".into()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?;
    let member = user(&mut users, &format!("member-{run}@bench.example")).await?;
    customers
        .add_customer_user(pb::AddCustomerUserRequest {
            customer_id: main.clone(),
            member: Some(pb::add_customer_user_request::Member::UserId(
                member.clone(),
            )),
            roles: vec!["operator".into()],
            ..Default::default()
        })
        .await?;

    // A user who is a member (through a role) of `--memberships` customers.
    let wide = user(&mut users, &format!("wide-{run}@bench.example")).await?;
    let mut reachable = Vec::new();
    for i in 0..args.memberships {
        let id = customer(&mut customers, &format!("c{i}-{run}@bench.example"), &owner).await?;
        customers
            .create_customer_role(pb::CreateCustomerRoleRequest {
                customer_id: id.clone(),
                role: Some(pb::Role {
                    name: "operator".into(),
                    permissions: vec!["rooms.read".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await?;
        customers
            .add_customer_user(pb::AddCustomerUserRequest {
                customer_id: id.clone(),
                member: Some(pb::add_customer_user_request::Member::UserId(wide.clone())),
                roles: vec!["operator".into()],
                ..Default::default()
            })
            .await?;
        reachable.push(id);
    }

    std::fs::create_dir_all(&args.out)?;
    let write = |name: &str, body: Vec<u8>| std::fs::write(args.out.join(name), body);
    write(
        "check_access_role.bin",
        frame(&pb::CheckAccessRequest {
            user_id: member.clone(),
            target: Some(check_access_request::Target::CustomerId(main.clone())),
            permission: "rooms.write".into(),
        }),
    )?;
    write(
        "batch20.bin",
        frame(&pb::BatchCheckAccessRequest {
            user_id: wide.clone(),
            checks: reachable
                .iter()
                .take(20)
                .enumerate()
                .map(|(i, id)| pb::AccessCheck {
                    target: Some(access_check::Target::CustomerId(id.clone())),
                    permission: if i % 2 == 0 {
                        "rooms.read"
                    } else {
                        "rooms.write"
                    }
                    .into(),
                })
                .collect(),
        }),
    )?;
    write(
        "list_accessible.bin",
        frame(&pb::ListAccessibleResourcesRequest {
            user_id: wide.clone(),
            permission: "rooms.read".into(),
            resource_type: pb::ResourceType::Customer as i32,
            page_size: 0,
            page_token: String::new(),
        }),
    )?;
    write(
        "get_user.bin",
        frame(&pb::GetUserRequest {
            lookup: Some(pb::get_user_request::Lookup::UserId(wide.clone())),
        }),
    )?;
    // An empty HealthCheckRequest: the service name "" is the server as a whole.
    write("health.bin", vec![0, 0, 0, 0, 0])?;
    println!("seeded: {} memberships", args.memberships);
    Ok(())
}

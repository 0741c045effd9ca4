/** The generated `tenancy.v1` messages and service descriptors. */
export * from "../gen/tenancy/v1/common_pb.js";
export * from "../gen/tenancy/v1/user_service_pb.js";
export * from "../gen/tenancy/v1/customer_service_pb.js";
export * from "../gen/tenancy/v1/account_service_pb.js";
export * from "../gen/tenancy/v1/event_service_pb.js";
export * from "../gen/tenancy/v1/session_service_pb.js";

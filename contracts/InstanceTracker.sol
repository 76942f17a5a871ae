// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Multicall} from "@openzeppelin/contracts/utils/Multicall.sol";

/// @title InstanceTracker
/// @notice Anchors content identifiers (SHA-256 of published documents) of executable models, their
/// instances and the ordered states each instance entered, so that parties who do not trust the
/// cloud account owner can verify what ran.
/// @dev Per-state existence is proven by events (indexed by instance and state id) and by the
/// per-instance accumulator `head`, a hash chain over the ordered state ids that starts from
/// keccak256(model, instance): one read of (head, stateCount) checks a whole ordered trace and
/// which model it belongs to. `multicall` batches any of these calls into one transaction.
contract InstanceTracker is Multicall {
    /// @dev One slot: the publisher and the registration time fit together.
    struct Model {
        address publisher;
        uint64 registeredAt;
    }

    /// @dev Slot 0 packs owner, count and flag (29 bytes) so that a batch of states touches one
    /// slot for its checks. `head` stays zero until the first state: the start of the chain is
    /// derived from (model, instance), which saves a storage write on registration.
    struct Instance {
        address owner;
        uint64 stateCount;
        bool terminated;
        bytes32 model;
        bytes32 head;
    }

    /// @dev The fingerprint and the EIP-191 signature by the account that registered it.
    struct Certificate {
        bytes32 fingerprint;
        uint64 registeredAt;
        bytes signature;
    }

    /// @dev One slot per Merkle root: who anchored it, when, and how many leaves it covers.
    struct Anchor {
        address submitter;
        uint64 anchoredAt;
        uint32 leafCount;
    }

    /// @notice Model id => publisher and registration time.
    mapping(bytes32 model => Model) public models;
    /// @notice Instance id => model, owner, state count, termination flag and stored chain head.
    mapping(bytes32 instance => Instance) public instances;
    /// @notice Owner => operator => whether the operator may register on the owner's behalf.
    mapping(address owner => mapping(address operator => bool)) public isOperator;
    /// @notice Account => its registered client id.
    mapping(address account => string) public clientIdOf;
    /// @notice Merkle root => who anchored it, when and how many leaves it covers.
    mapping(bytes32 root => Anchor) public anchors;
    mapping(address account => Certificate) private _certificates;

    /// @notice A model id was registered for the first time.
    /// @param model The model id.
    /// @param publisher The account that registered it first and owns it.
    event ModelRegistered(bytes32 indexed model, address indexed publisher);

    /// @notice An instance of a registered model was registered.
    /// @param instance The instance id.
    /// @param model The model id the instance belongs to.
    /// @param owner The account that owns the instance.
    event InstanceRegistered(bytes32 indexed instance, bytes32 indexed model, address indexed owner);

    /// @notice An instance entered a state.
    /// @param instance The instance id.
    /// @param state The state id.
    /// @param seq The state's position in the instance's trace, from 0.
    event StateRegistered(bytes32 indexed instance, bytes32 indexed state, uint256 seq);

    /// @notice A transition between two registered states of one instance was recorded.
    /// @param instance The instance id.
    /// @param pre The state the transition leaves.
    /// @param post The state the transition enters.
    /// @param preSeq The position of `pre` in the trace.
    /// @param postSeq The position of `post` in the trace.
    event TransitionRegistered(
        bytes32 indexed instance, bytes32 indexed pre, bytes32 indexed post, uint256 preSeq, uint256 postSeq
    );

    /// @notice An instance ended; no state can be added afterwards.
    /// @param instance The instance id.
    /// @param endDocument The id of the end document (status, stop date, result digest).
    /// @param stateCount The final number of states.
    /// @param head The final chain head over all states.
    event InstanceTerminated(bytes32 indexed instance, bytes32 indexed endDocument, uint256 stateCount, bytes32 head);

    /// @notice An instance changed owner.
    /// @param instance The instance id.
    /// @param from The previous owner.
    /// @param to The new owner.
    event InstanceTransferred(bytes32 indexed instance, address indexed from, address indexed to);

    /// @notice An owner approved or revoked an operator.
    /// @param owner The owner granting or revoking.
    /// @param operator The operator concerned.
    /// @param approved Whether the operator may now act for the owner.
    event OperatorSet(address indexed owner, address indexed operator, bool approved);

    /// @notice An account registered its client id.
    /// @param account The account.
    /// @param clientId The client id.
    event ClientIdRegistered(address indexed account, string clientId);

    /// @notice An account registered (or rotated) its server certificate fingerprint.
    /// @param account The account, which signed the fingerprint.
    /// @param fingerprint The SHA-256 fingerprint of the DER certificate.
    /// @param signature The account's EIP-191 signature of the fingerprint.
    event CertificateRegistered(address indexed account, bytes32 indexed fingerprint, bytes signature);

    /// @notice A Merkle root covering many states (across instances) was anchored.
    /// @param root The Merkle root.
    /// @param submitter The account that anchored it.
    /// @param leafCount The number of state leaves under the root.
    event StatesAnchored(bytes32 indexed root, address indexed submitter, uint256 leafCount);

    /// @notice A zero identifier was given where a SHA-256 id is required.
    error ZeroIdentifier();
    /// @notice The model is not registered.
    /// @param model The model id.
    error ModelNotRegistered(bytes32 model);
    /// @notice The instance id is already registered.
    /// @param instance The instance id.
    /// @param owner Its current owner.
    error InstanceAlreadyRegistered(bytes32 instance, address owner);
    /// @notice The instance is not registered.
    /// @param instance The instance id.
    error InstanceNotRegistered(bytes32 instance);
    /// @notice The caller is neither the instance's owner nor an operator the owner approved.
    /// @param instance The instance id.
    /// @param caller The caller.
    error InstanceNotOwned(bytes32 instance, address caller);
    /// @notice The caller is not the instance's owner.
    /// @param instance The instance id.
    /// @param caller The caller.
    error NotInstanceOwner(bytes32 instance, address caller);
    /// @notice The instance is terminated.
    /// @param instance The instance id.
    error InstanceIsTerminated(bytes32 instance);
    /// @notice The batch does not start where the instance's trace ends (a resend or a gap).
    /// @param instance The instance id.
    /// @param expected The instance's current state count.
    /// @param given The sequence number the batch claimed to start at.
    error SequenceMismatch(bytes32 instance, uint256 expected, uint256 given);
    /// @notice No states were given.
    error NoStates();
    /// @notice A trace suffix does not hash to the instance's stored head.
    /// @param instance The instance id.
    /// @param computed The head computed from the given suffix.
    /// @param stored The instance's head.
    error TraceMismatch(bytes32 instance, bytes32 computed, bytes32 stored);
    /// @notice The transition's positions are not a pre-state followed by a post-state in the suffix.
    /// @param postOffset The offset given for the post-state.
    /// @param suffixLength The length of the suffix.
    error InvalidTransition(uint256 postOffset, uint256 suffixLength);
    /// @notice The address is zero.
    error ZeroAddress();
    /// @notice The signature does not recover to the sender.
    /// @param signer The address the signature recovers to (zero if it does not recover).
    /// @param sender The sender.
    error CertificateSignerMismatch(address signer, address sender);
    /// @notice The Merkle root was already anchored.
    /// @param root The root.
    /// @param submitter Who anchored it.
    error AnchorAlreadyExists(bytes32 root, address submitter);
    /// @notice The client id is empty or longer than 64 bytes.
    /// @param length Its length in bytes.
    error InvalidClientId(uint256 length);

    // ------------------------------------------------------------------ models and instances

    /// @notice Registers a model id; the first registrant becomes its publisher, later calls change nothing.
    /// @param model The SHA-256 of the model document.
    function registerModel(bytes32 model) external {
        _ensureModel(model);
    }

    /// @notice Registers an instance of a registered model, owned by the caller.
    /// @param model The model id.
    /// @param instance The SHA-256 of the instance document.
    function registerInstance(bytes32 model, bytes32 instance) external {
        if (models[model].publisher == address(0)) revert ModelNotRegistered(model);
        _createInstance(model, instance);
    }

    /// @notice Registers a model (if new), an instance of it and its first states in one call.
    /// @param model The model id.
    /// @param instance The instance id.
    /// @param states The state ids in the order the instance entered them (may be empty).
    function registerExecution(bytes32 model, bytes32 instance, bytes32[] calldata states) external {
        _ensureModel(model);
        if (states.length == 0) {
            _createInstance(model, instance);
            return;
        }
        _requireNewInstance(instance);
        emit InstanceRegistered(instance, model, msg.sender);
        // Computed in memory and written slot by slot once: owner and count share slot 0.
        bytes32 head = _startHead(model, instance);
        uint256 length = states.length;
        for (uint256 i = 0; i < length; ++i) {
            bytes32 state = states[i];
            if (state == bytes32(0)) revert ZeroIdentifier();
            head = _chain(head, state);
            emit StateRegistered(instance, state, i);
        }
        instances[instance] = Instance(msg.sender, uint64(length), false, model, head);
    }

    /// @notice Appends states to an instance in order; only the owner or an approved operator.
    /// @param instance The instance id.
    /// @param fromSeq The sequence number of the first state given: the instance's current count.
    /// @param states The state ids in order.
    function registerStates(bytes32 instance, uint256 fromSeq, bytes32[] calldata states) external {
        if (states.length == 0) revert NoStates();
        Instance storage record = _requireWritable(instance);
        _appendStatesAt(record, instance, fromSeq, states);
    }

    /// @notice Appends the last states of an instance and terminates it, in one call.
    /// @param instance The instance id.
    /// @param fromSeq The sequence number of the first state given: the instance's current count.
    /// @param states The state ids in order (may be empty).
    /// @param endDocument The SHA-256 of the end document.
    function registerStatesAndTerminate(bytes32 instance, uint256 fromSeq, bytes32[] calldata states, bytes32 endDocument)
        external
    {
        Instance storage record = _requireWritable(instance);
        if (states.length != 0) _appendStatesAt(record, instance, fromSeq, states);
        _terminate(record, instance, endDocument);
    }

    /// @notice Terminates an instance; only the owner or an approved operator.
    /// @param instance The instance id.
    /// @param endDocument The SHA-256 of the end document.
    function terminateInstance(bytes32 instance, bytes32 endDocument) external {
        _terminate(_requireWritable(instance), instance, endDocument);
    }

    /// @notice Records a transition between two registered states of one instance.
    /// @dev The caller proves both states by giving the trace from `pre` to the end and the chain
    /// head just before `pre`; the contract recomputes the head and compares it with storage.
    /// @param instance The instance id.
    /// @param headBeforePre The chain head just before the pre-state.
    /// @param suffix The state ids from the pre-state (index 0) to the last registered state.
    /// @param postOffset The index of the post-state within `suffix` (at least 1).
    function registerTransition(bytes32 instance, bytes32 headBeforePre, bytes32[] calldata suffix, uint256 postOffset)
        external
    {
        Instance storage record = _requireWritable(instance);
        uint256 length = suffix.length;
        uint256 count = record.stateCount;
        if (postOffset == 0 || postOffset >= length || length > count) revert InvalidTransition(postOffset, length);
        bytes32 head = headBeforePre;
        for (uint256 i = 0; i < length; ++i) {
            head = _chain(head, suffix[i]);
        }
        if (head != record.head) revert TraceMismatch(instance, head, record.head);
        uint256 preSeq = count - length;
        emit TransitionRegistered(instance, suffix[0], suffix[postOffset], preSeq, preSeq + postOffset);
    }

    /// @notice Hands an instance to a new owner; only the current owner.
    /// @param instance The instance id.
    /// @param newOwner The new owner.
    function transferInstance(bytes32 instance, address newOwner) external {
        if (newOwner == address(0)) revert ZeroAddress();
        Instance storage record = instances[instance];
        address owner = record.owner;
        if (owner == address(0)) revert InstanceNotRegistered(instance);
        if (owner != msg.sender) revert NotInstanceOwner(instance, msg.sender);
        record.owner = newOwner;
        emit InstanceTransferred(instance, owner, newOwner);
    }

    /// @notice Approves or revokes an operator that may register states and terminate for the caller.
    /// @param operator The operator (for example a tracker service key).
    /// @param approved True to approve, false to revoke.
    function setOperator(address operator, bool approved) external {
        if (operator == address(0)) revert ZeroAddress();
        isOperator[msg.sender][operator] = approved;
        emit OperatorSet(msg.sender, operator, approved);
    }

    // ------------------------------------------------------------------ accounts and certificates

    /// @notice Registers (or replaces) the caller's client id.
    /// @param clientId A non-empty id of at most 64 bytes.
    function registerClientId(string calldata clientId) external {
        uint256 length = bytes(clientId).length;
        if (length == 0 || length > 64) revert InvalidClientId(length);
        clientIdOf[msg.sender] = clientId;
        emit ClientIdRegistered(msg.sender, clientId);
    }

    /// @notice Registers (or rotates) the caller's certificate fingerprint with the caller's signature of it.
    /// @param fingerprint The SHA-256 fingerprint of the DER-encoded X.509 certificate.
    /// @param signature The 65-byte EIP-191 signature of the 32 fingerprint bytes by the caller.
    function registerCertificate(bytes32 fingerprint, bytes calldata signature) external {
        if (fingerprint == bytes32(0)) revert ZeroIdentifier();
        (address signer,,) = ECDSA.tryRecover(MessageHashUtils.toEthSignedMessageHash(fingerprint), signature);
        if (signer != msg.sender) revert CertificateSignerMismatch(signer, msg.sender);
        _certificates[msg.sender] = Certificate(fingerprint, uint64(block.timestamp), signature);
        emit CertificateRegistered(msg.sender, fingerprint, signature);
    }

    /// @notice The certificate registered by an account.
    /// @param account The account.
    /// @return fingerprint The SHA-256 fingerprint (zero when none).
    /// @return signature The account's signature of the fingerprint.
    /// @return registeredAt The block timestamp of the registration.
    function certificateOf(address account)
        external
        view
        returns (bytes32 fingerprint, bytes memory signature, uint64 registeredAt)
    {
        Certificate storage cert = _certificates[account];
        return (cert.fingerprint, cert.signature, cert.registeredAt);
    }

    // ------------------------------------------------------------------ Merkle anchors

    /// @notice Anchors a Merkle root over state leaves (see `stateLeaf`) of any number of instances.
    /// @param root The Merkle root (OpenZeppelin sorted-pair tree).
    /// @param leafCount The number of leaves under the root.
    function anchorStates(bytes32 root, uint32 leafCount) external {
        if (root == bytes32(0)) revert ZeroIdentifier();
        if (leafCount == 0) revert NoStates();
        address existing = anchors[root].submitter;
        if (existing != address(0)) revert AnchorAlreadyExists(root, existing);
        anchors[root] = Anchor(msg.sender, uint64(block.timestamp), leafCount);
        emit StatesAnchored(root, msg.sender, leafCount);
    }

    /// @notice The leaf for a state in an anchored tree.
    /// @param instance The instance id.
    /// @param state The state id.
    /// @param seq The state's position in the instance's trace.
    /// @return The leaf: keccak256 of keccak256 of the ABI encoding of the three values.
    function stateLeaf(bytes32 instance, bytes32 state, uint256 seq) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(instance, state, seq))));
    }

    /// @notice Checks a state against an anchored root and returns who anchored it.
    /// @param root The anchored root.
    /// @param instance The instance id.
    /// @param state The state id.
    /// @param seq The state's position in the instance's trace.
    /// @param proof The Merkle proof of the leaf.
    /// @return valid True when the root is anchored and the proof holds.
    /// @return submitter The account that anchored the root (zero when not anchored).
    function verifyAnchoredState(bytes32 root, bytes32 instance, bytes32 state, uint256 seq, bytes32[] calldata proof)
        external
        view
        returns (bool valid, address submitter)
    {
        submitter = anchors[root].submitter;
        valid = submitter != address(0) && MerkleProof.verifyCalldata(proof, root, stateLeaf(instance, state, seq));
    }

    // ------------------------------------------------------------------ views

    /// @notice The chain head over an instance's states, derived from (model, instance) before the first state.
    /// @param instance The instance id.
    /// @return The head a verifier recomputes from the ordered state ids.
    function instanceHead(bytes32 instance) external view returns (bytes32) {
        Instance storage record = instances[instance];
        if (record.owner == address(0)) revert InstanceNotRegistered(instance);
        return record.stateCount == 0 ? _startHead(record.model, instance) : record.head;
    }

    // ------------------------------------------------------------------ internals

    function _ensureModel(bytes32 model) internal {
        if (model == bytes32(0)) revert ZeroIdentifier();
        if (models[model].publisher != address(0)) return;
        models[model] = Model(msg.sender, uint64(block.timestamp));
        emit ModelRegistered(model, msg.sender);
    }

    function _createInstance(bytes32 model, bytes32 instance) internal {
        _requireNewInstance(instance);
        Instance storage record = instances[instance];
        record.owner = msg.sender;
        record.model = model;
        emit InstanceRegistered(instance, model, msg.sender);
    }

    function _requireNewInstance(bytes32 instance) internal view {
        if (instance == bytes32(0)) revert ZeroIdentifier();
        address owner = instances[instance].owner;
        if (owner != address(0)) revert InstanceAlreadyRegistered(instance, owner);
    }

    /// @dev Returns the instance when it exists, is not terminated and the caller may write to it.
    function _requireWritable(bytes32 instance) internal view returns (Instance storage record) {
        record = instances[instance];
        address owner = record.owner;
        if (owner == address(0)) revert InstanceNotRegistered(instance);
        if (owner != msg.sender && !isOperator[owner][msg.sender]) revert InstanceNotOwned(instance, msg.sender);
        if (record.terminated) revert InstanceIsTerminated(instance);
    }

    function _appendStatesAt(Instance storage record, bytes32 instance, uint256 fromSeq, bytes32[] calldata states)
        internal
    {
        uint256 count = record.stateCount;
        if (fromSeq != count) revert SequenceMismatch(instance, count, fromSeq);
        bytes32 head = count == 0 ? _startHead(record.model, instance) : record.head;
        _appendStates(record, instance, head, count, states);
    }

    /// @dev Keeps the head in memory across the batch and writes head and count once at the end.
    function _appendStates(
        Instance storage record,
        bytes32 instance,
        bytes32 head,
        uint256 count,
        bytes32[] calldata states
    ) internal {
        uint256 length = states.length;
        for (uint256 i = 0; i < length; ++i) {
            bytes32 state = states[i];
            if (state == bytes32(0)) revert ZeroIdentifier();
            head = _chain(head, state);
            emit StateRegistered(instance, state, count + i);
        }
        record.head = head;
        record.stateCount = uint64(count + length);
    }

    function _terminate(Instance storage record, bytes32 instance, bytes32 endDocument) internal {
        if (endDocument == bytes32(0)) revert ZeroIdentifier();
        record.terminated = true;
        uint256 count = record.stateCount;
        bytes32 head = count == 0 ? _startHead(record.model, instance) : record.head;
        emit InstanceTerminated(instance, endDocument, count, head);
    }

    function _startHead(bytes32 model, bytes32 instance) internal pure returns (bytes32) {
        return _chain(model, instance);
    }

    /// @dev keccak256(a || b) in scratch space, avoiding a memory allocation per state.
    function _chain(bytes32 a, bytes32 b) internal pure returns (bytes32 result) {
        assembly ("memory-safe") {
            mstore(0x00, a)
            mstore(0x20, b)
            result := keccak256(0x00, 0x40)
        }
    }
}
